import { describe, expect, it } from 'vitest';
import { isWzpError } from '../errors/index.js';
import { grantsAllowRoom, mintToken, verifyToken } from './token.js';

const SECRET = 'a-test-secret-of-32-bytes-length!';

describe('access tokens', () => {
  it('round-trips grants', async () => {
    const token = await mintToken({
      secret: SECRET,
      room: 'general',
      subject: 'alice',
      publish: false,
    });
    const v = await verifyToken(token, SECRET);
    expect(v.subject).toBe('alice');
    expect(v.grants).toEqual({ room: 'general', publish: false, subscribe: true, call: false });
    expect(grantsAllowRoom(v.grants, 'general')).toBe(true);
    expect(grantsAllowRoom(v.grants, 'other')).toBe(false);
    expect(grantsAllowRoom({ ...v.grants, room: '*' }, 'other')).toBe(true);
  });

  it('the call grant: absent by default; when present it allows call-* rooms only', async () => {
    const plain = await verifyToken(await mintToken({ secret: SECRET, room: 'general' }), SECRET);
    expect(plain.grants.call).toBe(false);
    expect(grantsAllowRoom(plain.grants, 'call-x')).toBe(false);
    const caller = await verifyToken(
      await mintToken({ secret: SECRET, room: 'general', call: true }),
      SECRET,
    );
    expect(caller.grants.call).toBe(true);
    expect(grantsAllowRoom(caller.grants, 'call-x')).toBe(true);
    expect(grantsAllowRoom(caller.grants, 'other')).toBe(false);
  });

  it('refuses a wrong secret, garbage and expired tokens with AUTH_FAILED', async () => {
    const token = await mintToken({ secret: SECRET, room: 'r' });
    await expect(verifyToken(token, `${SECRET}x`)).rejects.toSatisfy((e) =>
      isWzpError(e, 'AUTH_FAILED'),
    );
    await expect(verifyToken('not.a.jwt', SECRET)).rejects.toSatisfy((e) =>
      isWzpError(e, 'AUTH_FAILED'),
    );
    const expired = await mintToken({ secret: SECRET, room: 'r', ttlSeconds: 1 });
    await new Promise((r) => setTimeout(r, 2100));
    await expect(verifyToken(expired, SECRET)).rejects.toSatisfy(
      (e) => isWzpError(e, 'AUTH_FAILED') && /expired/.test((e as Error).message),
    );
  });

  it('enforces the issuer when configured and rejects short secrets', async () => {
    const token = await mintToken({ secret: SECRET, room: 'r', issuer: 'relay-a' });
    await expect(verifyToken(token, SECRET, 'relay-a')).resolves.toBeTruthy();
    await expect(verifyToken(token, SECRET, 'relay-b')).rejects.toSatisfy((e) =>
      isWzpError(e, 'AUTH_FAILED'),
    );
    await expect(mintToken({ secret: 'short', room: 'r' })).rejects.toSatisfy((e) =>
      isWzpError(e, 'CONFIG_INVALID'),
    );
  });
});
