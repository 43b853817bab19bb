/* c-http: the example C app. A small single-threaded HTTP/1.0 server on plain sockets. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void reply(int fd, int status, const char *body, size_t len) {
  char head[256];
  int n = snprintf(head, sizeof head, "HTTP/1.0 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                   status, status == 200 ? "OK" : "Not Found", len);
  if (write(fd, head, n) < 0 || write(fd, body, len) < 0) perror("write");
}

static void serve(int fd) {
  char req[2048];
  ssize_t n = read(fd, req, sizeof req - 1);
  if (n <= 0) return;
  req[n] = 0;
  char path[512] = "";
  sscanf(req, "%*s %511s", path);
  if (!strcmp(path, "/ping_test")) {
    reply(fd, 200, "pong", 4);
  } else if (!strcmp(path, "/env_test")) {
    const char *v = getenv("KEY");
    reply(fd, 200, v ? v : "", v ? strlen(v) : 0);
  } else if (!strcmp(path, "/mount_test")) {
    static char data[65536];
    FILE *f = fopen("/data/data.txt", "r");
    if (!f) { reply(fd, 404, "no /data/data.txt", 17); return; }
    size_t len = fread(data, 1, sizeof data, f);
    fclose(f);
    reply(fd, 200, data, len);
  } else {
    reply(fd, 404, "not found", 9);
  }
}

int main(void) {
  const char *port = getenv("PORT");
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port ? atoi(port) : 8080), .sin_addr.s_addr = INADDR_ANY};
  if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 64)) { perror("listen"); return 1; }
  printf("c-http listening on :%d\n", ntohs(a.sin_port));
  fflush(stdout);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    serve(c);
    close(c);
  }
}
