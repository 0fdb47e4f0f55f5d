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

#define MAX_ROOMS 1024
#define MAX_MEMBERS 64

struct room {
  int n;
  uint32_t slot[MAX_MEMBERS];
  struct sockaddr_in addr[MAX_MEMBERS];
};

static int32_t room_of_port[65536];
static struct room rooms[MAX_ROOMS];

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
  memset(room_of_port, 0xff, sizeof room_of_port);

  unsigned char buf[2048];
  for (;;) {
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
    if (n <= 0) {
      continue;
    }
    uint16_t sport = ntohs(from.sin_port);
    if (buf[0] == 0xff && n == 5) {
      unsigned r = ((unsigned)((buf[1] << 8) | buf[2])) & (MAX_ROOMS - 1);
      uint32_t slot = (uint32_t)((buf[3] << 8) | buf[4]);
      struct room *rm = &rooms[r];
      int k = 0;
      while (k < rm->n && rm->slot[k] != slot) {
        k++;
      }
      if (k == rm->n) {
        if (rm->n == MAX_MEMBERS) {
          continue;
        }
        rm->n++;
      }
      rm->slot[k] = slot;
      rm->addr[k] = from;
      room_of_port[sport] = (int32_t)r;
      unsigned char ack = 0xfe;
      sendto(fd, &ack, 1, 0, (struct sockaddr *)&from, flen);
      continue;
    }
    int32_t r = room_of_port[sport];
    if (r < 0) {
      continue;
    }
    struct room *rm = &rooms[r];
    for (int k = 0; k < rm->n; k++) {
      if (rm->addr[k].sin_port != from.sin_port) {
        sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&rm->addr[k], sizeof rm->addr[k]);
      }
    }
  }
}
