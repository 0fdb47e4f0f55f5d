/** `wzp token`: mints an HS256 access token for a room. */
import type { Command } from 'commander';
import { mintToken } from '../../auth/token.js';
import { WzpError } from '../../errors/index.js';
import { type CliIo, EXIT_OK, reportError } from '../io.js';

export function registerToken(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('token')
    .description('mint an access token (HS256 JWT) with room and publish/subscribe grants')
    .option('--secret <secret>', 'the relay auth_secret (or WZP_AUTH_SECRET)')
    .requiredOption('--room <room>', 'room name, or * for every room')
    .option('--subject <id>', 'who the token is for')
    .option('--ttl <seconds>', 'lifetime in seconds', '3600')
    .option('--no-publish', 'may not send media')
    .option('--no-subscribe', 'receives no media')
    .option('--issuer <iss>', 'iss claim')
    .option('--call', 'grant direct calling (the /v2/hub and call-<id> rooms)', false)
    .action(
      async (o: {
        secret?: string;
        room: string;
        subject?: string;
        ttl: string;
        publish: boolean;
        subscribe: boolean;
        issuer?: string;
        call: boolean;
      }) => {
        try {
          const secret = o.secret ?? process.env.WZP_AUTH_SECRET;
          if (secret === undefined) {
            throw new WzpError('CONFIG_INVALID', 'give --secret or WZP_AUTH_SECRET');
          }
          const token = await mintToken({
            secret,
            room: o.room,
            ttlSeconds: Number(o.ttl),
            publish: o.publish,
            subscribe: o.subscribe,
            call: o.call,
            ...(o.subject !== undefined ? { subject: o.subject } : {}),
            ...(o.issuer !== undefined ? { issuer: o.issuer } : {}),
          });
          io.out(token);
          setExit(EXIT_OK);
        } catch (err) {
          setExit(reportError(io, err));
        }
      },
    );
}
