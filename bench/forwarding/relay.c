/*
 * The machine's reference of bench/forwarding: a minimal C sendto fan-out
 * relay with no protocol logic. 0xFF room u16 slot u16 registers the source
 * as member `slot` of a room (a slot registered again moves; answered 0xFE);
 * any other datagram goes unchanged, one sendto per member, to every other
 * member of the sender's room. Prints its port on stdout.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rooms.h"

int main(int argc, char **argv) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int size = argc > 2 ? atoi(argv[2]) : 512 << 10;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  struct sockaddr_in self;
  memset(&self, 0, sizeof self);
  self.sin_family = AF_INET;
  self.sin_port = htons(argc > 1 ? (uint16_t)strtol(argv[1], NULL, 10) : 0);
  self.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&self, sizeof self) != 0) {
    perror("bind");
    return 1;
  }
  socklen_t slen = sizeof self;
  getsockname(fd, (struct sockaddr *)&self, &slen);
  printf("%d\n", ntohs(self.sin_port));
  fflush(stdout);
  rooms_init();

  unsigned char buf[2048];
  for (;;) {
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
    if (n <= 0) {
      continue;
    }
    if (rooms_register(buf, (size_t)n, &from)) {
      unsigned char ack = 0xfe;
      sendto(fd, &ack, 1, 0, (struct sockaddr *)&from, flen);
      continue;
    }
    struct room *rm = rooms_of(&from);
    if (rm == NULL) {
      continue;
    }
    for (int k = 0; k < rm->n; k++) {
      if (rm->addr[k].sin_port != from.sin_port) {
        sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&rm->addr[k], sizeof rm->addr[k]);
      }
    }
  }
}
