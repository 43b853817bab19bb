/*
 * unik guest init: PID 1 of every unikernel.
 *
 * The contract (documented in docs/guest-contract.md):
 *   - /unik/config holds NUL-terminated "key=value" records, written by the host at every
 *     start and appended to the initramfs as a second cpio archive, so it can carry an
 *     environment of any size (the kernel command line is limited to 2 KiB):
 *       arg=...            argv, in order; the first is the program
 *       env=K=V            environment, in order
 *       cwd=/path          working directory
 *       hostname=name
 *       time=SECONDS       host wall clock when QEMU was started (microvm has no RTC; a PC
 *                          kernel's hardware RTC, where it set the clock, is kept instead)
 *       net.if=eth0  net.ip=A.B.C.D/PREFIX  net.gw=A.B.C.D  net.dns=A.B.C.D  net.mac=xx:..:xx
 *       mount=SERIAL:FSTYPE:/mount/point   a volume: the virtio disk with that serial
 *       mount=label=NAME:FSTYPE:/mount/point   a volume found by its filesystem label (config drives)
 *       now=SECONDS        host wall clock when the config was sent (a restored VM's uptime
 *                          says nothing about the host's clock)
 *       seed=HEX           host randomness, credited and used to reseed the kernel's CRNG:
 *                          every VM restored from one snapshot would otherwise share its state
 *       user=UID:GID[:G1,G2,...]   the app runs as this user, groups and supplementary groups
 *       stopsignal=N       the signal an orderly stop sends the app (default SIGTERM)
 *       profile=1          a `--slim` build's profiling boot: every file the app opens on the
 *                          image root is written to the console once, as "unik-init: opened PATH"
 *                          (bytes outside printable ASCII, and backslash, as \xNN)
 *   - a volume whose filesystem is fresh (nothing but an empty lost+found) mounted over a
 *     directory the image has is filled from it first, owners and modes kept, as Docker fills
 *     an empty volume (PostgreSQL's data directory must belong to postgres and be empty)
 *   - an image whose initramfs holds /unik/root ("erofs") keeps its files on a read-only disk,
 *     the virtio-blk disk with serial "unik-root": init mounts it under a tmpfs overlay and
 *     makes that the root (before it waits for a snapshot's config, so templates hold it).
 *   - with "unik.wait" on the kernel command line and no /unik/config, init boots as a
 *     snapshot template: it writes "unik:waiting" on the control channel and reads the config
 *     from it as "config <length>\n" followed by the records. The host snapshots the VM while
 *     it waits and restores copies of it, each given its own config.
 *   - /dev/ttyS1 (x86; on arm64's virt machine, which has one UART, the virtio console
 *     /dev/hvc0) is the control channel: init writes "unik:ready <pid>" once the app is
 *     started and "unik:exit <code>" when it has ended and its data is synced (the host may
 *     end the VM from then on); it reads "stop" (SIGTERM to the app), "kill" (SIGKILL) and
 *     "signal N" lines from the host.
 *   - the app's stdout and stderr are the console (ttyS0; ttyAMA0 on arm64), which the host
 *     logs to a file.
 *   - when the app exits, init kills what is left, syncs and resets the VM; QEMU runs with
 *     -no-reboot, so the reset ends the QEMU process.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <grp.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 4096
#define MAX_ENV 16384
#define MAX_MOUNTS 32
#define MAX_GROUPS 64

/* from <linux/random.h>, which musl's headers do not carry */
struct rand_pool_info {
  int entropy_count;
  int buf_size;
};
#define RNDADDENTROPY _IOW('R', 0x03, int[2])
#define RNDRESEEDCRNG _IO('R', 0x07)

static int control_fd = -1;

static void say(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  (void)!write(2, "unik-init: ", 11);
  (void)!write(2, buf, n);
}

static void control(const char *fmt, ...) {
  if (control_fd < 0) return;
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  (void)!write(control_fd, buf, n);
  tcdrain(control_fd);
}

static void power_off(void) {
  sync();
  /* reboot=t on the kernel command line makes this a triple fault; QEMU's -no-reboot turns
   * the reset into a clean exit of the VM process. */
  reboot(RB_AUTOBOOT);
  for (;;) pause();
}

static void fail(int code, const char *what) {
  say("%s: %s", what, strerror(errno));
  control("unik:exit %d", code);
  power_off();
}

static void mount_or_warn(const char *src, const char *dst, const char *type, unsigned long flags,
                          const char *data) {
  mkdir(dst, 0755);
  if (mount(src, dst, type, flags, data) != 0 && errno != EBUSY)
    say("mount %s on %s: %s", type, dst, strerror(errno));
}

static void open_console(void) {
  int fd = open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd < 0) return;
  for (int i = 0; i < 3; i++)
    if (fd != i) dup2(fd, i);
  if (fd > 2) close(fd);
}

#if defined(__aarch64__)
#define CONTROL_TTY "/dev/hvc0"
#else
#define CONTROL_TTY "/dev/ttyS1"
#endif

static void open_control(void) {
  control_fd = open(CONTROL_TTY, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (control_fd < 0) return;
  struct termios t;
  if (tcgetattr(control_fd, &t) == 0) {
    /* raw: no echo of host commands back into the event log, no CR/LF translation */
    cfmakeraw(&t);
    cfsetispeed(&t, B115200);
    cfsetospeed(&t, B115200);
    tcsetattr(control_fd, TCSANOW, &t);
  }
}

struct config {
  char *args[MAX_ARGS + 1];
  int nargs;
  char *env[MAX_ENV + 1];
  int nenv;
  const char *cwd, *hostname, *time, *now, *seed;
  const char *net_if, *net_ip, *net_gw, *net_dns, *net_mac;
  char *mounts[MAX_MOUNTS];
  int nmounts;
  /* the user the app runs as (user=): set when has_user */
  int has_user;
  uid_t uid;
  gid_t gid;
  gid_t groups[MAX_GROUPS];
  int ngroups;
  int stop_signal; /* 0: SIGTERM */
  int profile;     /* profile=1: record the files the app opens */
};

/* Parses "UID:GID[:G1,G2,...]"; returns 0 if it is well-formed. */
static int parse_user(struct config *c, const char *v) {
  char *end;
  errno = 0;
  unsigned long uid = strtoul(v, &end, 10);
  if (errno || end == v || *end != ':' || uid > 0xfffffffeUL) return -1;
  v = end + 1;
  unsigned long gid = strtoul(v, &end, 10);
  if (errno || end == v || (*end != ':' && *end) || gid > 0xfffffffeUL) return -1;
  int n = 0;
  if (*end == ':' && end[1]) {
    v = end + 1;
    for (;;) {
      unsigned long g = strtoul(v, &end, 10);
      if (errno || end == v || (*end != ',' && *end) || g > 0xfffffffeUL || n >= MAX_GROUPS) return -1;
      c->groups[n++] = (gid_t)g;
      if (!*end) break;
      v = end + 1;
    }
  } else if (*end == ':') {
    return -1;
  }
  c->uid = (uid_t)uid;
  c->gid = (gid_t)gid;
  c->ngroups = n;
  c->has_user = 1;
  return 0;
}

/* Reads a whole file; /proc files report a size of 0, so read until EOF. */
static char *read_file(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0) { close(fd); return NULL; }
  size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, got = 0;
  char *buf = malloc(cap);
  if (!buf) { close(fd); return NULL; }
  for (;;) {
    if (got + 1 >= cap) {
      char *bigger = realloc(buf, cap * 2);
      if (!bigger) break;
      buf = bigger;
      cap *= 2;
    }
    ssize_t n = read(fd, buf + got, cap - 1 - got);
    if (n <= 0) break;
    got += n;
  }
  close(fd);
  buf[got] = 0;
  *len = got;
  return buf;
}

static int env_has(struct config *c, const char *key) {
  size_t k = strlen(key);
  for (int i = 0; i < c->nenv; i++)
    if (strncmp(c->env[i], key, k) == 0 && c->env[i][k] == '=') return 1;
  return 0;
}

/* Parses config records into c. With `defaults`, a record only fills what is still unset (the
 * image's own config under a config drive's): env by key, args only if there are none yet. */
static void parse_config_as(struct config *c, char *buf, size_t len, int defaults) {
  int had_args = c->nargs > 0;
  for (size_t off = 0; off < len;) {
    char *rec = buf + off;
    size_t n = strnlen(rec, len - off);
    off += n + 1;
    char *eq = strchr(rec, '=');
    if (!eq) continue;
    *eq = 0;
    char *v = eq + 1;
    if (defaults && strcmp(rec, "arg") && strcmp(rec, "env") && strcmp(rec, "mount")) {
      /* a scalar the drive already gave is kept */
      const char **slot = !strcmp(rec, "cwd") ? &c->cwd : !strcmp(rec, "hostname") ? &c->hostname : !strcmp(rec, "net.ip") ? &c->net_ip : NULL;
      if (slot && *slot) continue;
      /* a drive's user and stop signal win over the image's */
      if ((!strcmp(rec, "user") && c->has_user) || (!strcmp(rec, "stopsignal") && c->stop_signal)) continue;
    }
    if (!strcmp(rec, "arg")) { if (!(defaults && had_args) && c->nargs < MAX_ARGS) c->args[c->nargs++] = v; }
    else if (!strcmp(rec, "env")) {
      char *k = v, *e = strchr(v, '=');
      if (defaults && e) { *e = 0; int dup = env_has(c, k); *e = '='; if (dup) continue; }
      if (c->nenv < MAX_ENV) c->env[c->nenv++] = v;
    }
    else if (!strcmp(rec, "cwd")) c->cwd = v;
    else if (!strcmp(rec, "hostname")) c->hostname = v;
    else if (!strcmp(rec, "time")) c->time = v;
    else if (!strcmp(rec, "now")) c->now = v;
    else if (!strcmp(rec, "seed")) c->seed = v;
    else if (!strcmp(rec, "net.if")) c->net_if = v;
    else if (!strcmp(rec, "net.ip")) c->net_ip = v;
    else if (!strcmp(rec, "net.gw")) c->net_gw = v;
    else if (!strcmp(rec, "net.dns")) c->net_dns = v;
    else if (!strcmp(rec, "net.mac")) c->net_mac = v;
    else if (!strcmp(rec, "mount") && c->nmounts < MAX_MOUNTS) c->mounts[c->nmounts++] = v;
    else if (!strcmp(rec, "user")) { if (parse_user(c, v) != 0) { errno = EINVAL; say("bad user record %s", v); fail(126, "user"); } }
    else if (!strcmp(rec, "profile")) c->profile = !strcmp(v, "1");
    else if (!strcmp(rec, "stopsignal")) {
      int sig = atoi(v);
      if (sig > 0 && sig < 65) c->stop_signal = sig;
      else say("ignoring bad stopsignal %s", v);
    }
    else say("ignoring unknown config key %s", rec);
  }
  c->args[c->nargs] = NULL;
  c->env[c->nenv] = NULL;
}

/* Once every config is read: PATH and HOME if none gave them. */
static void finish_env(struct config *c) {
  if (!env_has(c, "PATH") && c->nenv < MAX_ENV) c->env[c->nenv++] = "PATH=/usr/local/bin:/usr/bin:/bin";
  if (!env_has(c, "HOME") && c->nenv < MAX_ENV) c->env[c->nenv++] = "HOME=/";
  c->env[c->nenv] = NULL;
}

static void parse_config(struct config *c, char *buf, size_t len) { parse_config_as(c, buf, len, 0); }

/* A config drive (exported images, where no control channel exists): a FAT disk, or its first
 * partition, holding /unik/config, attached by the user as cloud-init's NoCloud drive is. The
 * disks are probed for about a second; the first that holds a config wins. */
static char *read_config_drive(size_t *len) {
  mkdir("/unik", 0755);
  mkdir("/unik/drive", 0700);
  for (int pass = 0; pass < 20; pass++) {
    DIR *d = opendir("/sys/block");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.' || !strncmp(e->d_name, "loop", 4) || !strncmp(e->d_name, "ram", 3)) continue;
      const char *suffixes[] = {"", "1", "p1"};
      for (int i = 0; i < 3; i++) {
        char dev[300];
        snprintf(dev, sizeof dev, "/dev/%s%s", e->d_name, suffixes[i]);
        if (access(dev, F_OK) != 0) continue;
        if (mount(dev, "/unik/drive", "vfat", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "shortname=mixed") != 0) continue;
        char *raw = read_file("/unik/drive/unik/config", len);
        umount("/unik/drive");
        if (raw) { closedir(d); say("config drive %s", dev); return raw; }
      }
    }
    if (d) closedir(d);
    usleep(50000);
  }
  return NULL;
}

/* The kernel's DHCP client (ip=dhcp) lists the servers' DNS in /proc/net/pnp. */
static void dns_from_dhcp(void) {
  size_t len = 0;
  char *pnp = read_file("/proc/net/pnp", &len);
  if (!pnp || !len) return;
  mkdir("/etc", 0755);
  int fd = open("/etc/resolv.conf", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0) { (void)!write(fd, pnp, len); close(fd); }
}

static struct timespec config_read_at; /* CLOCK_MONOTONIC when the config arrived */

/* Did the kernel set the clock from a hardware RTC at boot? PC kernels (libvirt, exported
 * images) drive the CMOS clock that every PC hypervisor and cloud keeps; microvm has none. */
static int clock_from_rtc(void) {
  size_t len = 0;
  char *v = read_file("/sys/class/rtc/rtc0/hctosys", &len);
  int yes = v && len > 0 && v[0] == '1';
  free(v);
  return yes;
}

static void set_clock(const char *boot_time, const char *sent_time) {
  struct timespec up, now;
  clock_gettime(CLOCK_MONOTONIC, &up);
  if (!sent_time && clock_from_rtc()) {
    /* the platform's clock beats a config's: a config drive's time is when it was written */
    clock_gettime(CLOCK_REALTIME, &now);
    say("clock from the hardware RTC: %lld", (long long)now.tv_sec);
    return;
  }
  if (sent_time) {
    /* the host's clock when it sent the config, plus the time since it arrived */
    now.tv_sec = strtoll(sent_time, NULL, 10) + (up.tv_sec - config_read_at.tv_sec);
    now.tv_nsec = up.tv_nsec;
  } else if (boot_time) {
    /* the host's clock at QEMU start, plus the time this guest has been up */
    now.tv_sec = strtoll(boot_time, NULL, 10) + up.tv_sec;
    now.tv_nsec = up.tv_nsec;
  } else {
    return;
  }
  if (clock_settime(CLOCK_REALTIME, &now) != 0) say("set clock: %s", strerror(errno));
}

/* Mixes the host's seed into the kernel's pool, credits it and forces a CRNG reseed. */
static void reseed(const char *hex) {
  if (!hex) return;
  size_t n = strlen(hex) / 2;
  if (n == 0 || n > 256) return;
  struct { struct rand_pool_info info; unsigned char buf[256]; } e;
  for (size_t i = 0; i < n; i++) {
    unsigned int b;
    if (sscanf(hex + 2 * i, "%2x", &b) != 1) return;
    e.buf[i] = (unsigned char)b;
  }
  e.info.entropy_count = (int)n * 8;
  e.info.buf_size = (int)n;
  int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (ioctl(fd, RNDADDENTROPY, &e.info) != 0 || ioctl(fd, RNDRESEEDCRNG) != 0) say("reseed: %s", strerror(errno));
  close(fd);
}

static int cmdline_has(const char *word) {
  size_t len = 0;
  char *line = read_file("/proc/cmdline", &len);
  if (!line) return 0;
  int found = 0;
  for (char *tok = strtok(line, " \n"); tok && !found; tok = strtok(NULL, " \n")) found = !strcmp(tok, word);
  free(line);
  return found;
}

/* Blocks until n bytes have come in on the (non-blocking) control channel. */
static int read_control_exact(char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    struct pollfd p = {control_fd, POLLIN, 0};
    if (poll(&p, 1, -1) < 0 && errno != EINTR) return -1;
    ssize_t r = read(control_fd, buf + got, n - got);
    if (r < 0 && errno != EAGAIN && errno != EINTR) return -1;
    if (r > 0) got += r;
  }
  return 0;
}

/* Snapshot template mode: say so, then wait for "config <len>\n" and the records. */
static char *wait_for_config(size_t *len) {
  if (control_fd < 0) return NULL;
  tcflush(control_fd, TCIFLUSH);
  control("unik:waiting");
  char header[32];
  size_t used = 0;
  for (;;) {
    if (read_control_exact(header + used, 1) != 0) return NULL;
    if (header[used] == '\n') break;
    if (++used == sizeof header - 1) return NULL;
  }
  header[used] = 0;
  if (strncmp(header, "config ", 7) != 0) return NULL;
  size_t n = strtoul(header + 7, NULL, 10);
  if (n == 0 || n > (64u << 20)) return NULL;
  char *buf = malloc(n + 1);
  if (!buf || read_control_exact(buf, n) != 0) return NULL;
  buf[n] = 0;
  *len = n;
  return buf;
}

static int if_up(int s, const char *name) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) return -1;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  return ioctl(s, SIOCSIFFLAGS, &ifr);
}

static int set_addr(int s, const char *name, unsigned long req, in_addr_t addr) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = addr;
  return ioctl(s, req, &ifr);
}

static void configure_network(struct config *c) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return; /* a kernel without networking: nothing to set up */
  if (if_up(s, "lo") != 0) say("bring up lo: %s", strerror(errno));
  if (c->net_ip) {
    const char *ifname = c->net_if ? c->net_if : "eth0";
    char ip[64];
    snprintf(ip, sizeof ip, "%s", c->net_ip);
    int prefix = 24;
    char *slash = strchr(ip, '/');
    if (slash) { *slash = 0; prefix = atoi(slash + 1); }
    in_addr_t mask = prefix <= 0 ? 0 : htonl(0xffffffffu << (32 - prefix));
    if (c->net_mac) {
      /* before the link is up: a VM restored from a snapshot has its template's MAC */
      struct ifreq ifr;
      unsigned int b[6];
      memset(&ifr, 0, sizeof ifr);
      strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
      if (sscanf(c->net_mac, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) == 6) {
        ifr.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
        for (int i = 0; i < 6; i++) ifr.ifr_hwaddr.sa_data[i] = (char)b[i];
        if (ioctl(s, SIOCSIFHWADDR, &ifr) != 0) say("set MAC of %s: %s", ifname, strerror(errno));
      }
    }
    if (set_addr(s, ifname, SIOCSIFADDR, inet_addr(ip)) != 0 ||
        set_addr(s, ifname, SIOCSIFNETMASK, mask) != 0 || if_up(s, ifname) != 0)
      say("configure %s: %s", ifname, strerror(errno));
    if (c->net_gw) {
      struct rtentry rt;
      memset(&rt, 0, sizeof rt);
      struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;
      struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;
      struct sockaddr_in *msk = (struct sockaddr_in *)&rt.rt_genmask;
      dst->sin_family = gw->sin_family = msk->sin_family = AF_INET;
      gw->sin_addr.s_addr = inet_addr(c->net_gw);
      rt.rt_flags = RTF_UP | RTF_GATEWAY;
      rt.rt_dev = (char *)ifname;
      if (ioctl(s, SIOCADDRT, &rt) != 0) say("default route: %s", strerror(errno));
    }
  }
  close(s);
  mkdir("/etc", 0755);
  /* an image's own /etc/hosts or resolv.conf may be a symlink (to systemd's): replace, never follow */
  unlink("/etc/hosts");
  int fd = open("/etc/hosts", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd >= 0) {
    dprintf(fd, "127.0.0.1 localhost\n");
    if (c->hostname) dprintf(fd, "127.0.1.1 %s\n", c->hostname);
    close(fd);
  }
  if (c->net_dns) {
    unlink("/etc/resolv.conf");
    fd = open("/etc/resolv.conf", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) { dprintf(fd, "nameserver %s\n", c->net_dns); close(fd); }
  }
}

static void mkdir_p(const char *path) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    mkdir(buf, 0755);
    *p = '/';
  }
  mkdir(buf, 0755);
}

/* The label of the filesystem on a whole disk (ext2/3/4 or FAT), read from its superblock, or ""
 * if it has none this reader knows. A volume is a bare filesystem, so a partitioned disk (the
 * boot disk) never matches. */
static void fs_label(const char *dev, char *label, size_t len) {
  unsigned char sb[2048];
  label[0] = 0;
  int fd = open(dev, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = pread(fd, sb, sizeof sb, 0);
  close(fd);
  if (n != (ssize_t)sizeof sb) return;
  const unsigned char *at = NULL;
  size_t max = 0;
  if (sb[1024 + 56] == 0x53 && sb[1024 + 57] == 0xEF) { at = sb + 1024 + 120; max = 16; }       /* ext: s_volume_name */
  else if (sb[510] == 0x55 && sb[511] == 0xAA && !memcmp(sb + 82, "FAT32   ", 8)) { at = sb + 71; max = 11; }
  else if (sb[510] == 0x55 && sb[511] == 0xAA && !memcmp(sb + 54, "FAT1", 4)) { at = sb + 43; max = 11; }
  if (!at || len <= max) return;
  memcpy(label, at, max);
  label[max] = 0;
  for (size_t i = strnlen(label, max); i > 0 && label[i - 1] == ' '; i--) label[i - 1] = 0;  /* FAT pads with spaces */
}

/* Finds the block device whose virtio serial is `serial`, or, for "label=NAME" (a volume on a
 * cloud, attached as whatever disk the platform has), whose filesystem is labelled NAME. Disks
 * may still be probing, so wait a little. */
static int find_disk(const char *serial, char *dev, size_t devlen) {
  const char *label = !strncmp(serial, "label=", 6) ? serial + 6 : NULL;
  for (int tries = 0; tries < 200; tries++) {
    DIR *d = opendir("/sys/block");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char path[300], got[64] = {0};
      if (label) {
        snprintf(path, sizeof path, "/dev/%s", e->d_name);
        fs_label(path, got, sizeof got);
        if (got[0] && !strcasecmp(got, label)) {
          snprintf(dev, devlen, "%s", path);
          closedir(d);
          return 0;
        }
        continue;
      }
      snprintf(path, sizeof path, "/sys/block/%s/serial", e->d_name);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      ssize_t n = read(fd, got, sizeof got - 1);
      close(fd);
      while (n > 0 && (got[n - 1] == '\n' || got[n - 1] == ' ')) got[--n] = 0;
      if (n > 0 && !strcmp(got, serial)) {
        snprintf(dev, devlen, "/dev/%s", e->d_name);
        closedir(d);
        return 0;
      }
    }
    if (d) closedir(d);
    usleep(10000);
  }
  return -1;
}

/* Copies the tree under directory `from` into `to` (both open directory fds), owners, modes
 * and links as they are; what cannot be copied is said and skipped. */
static void copy_tree(int from, int to, int depth) {
  if (depth > 64) return;
  int scan = dup(from);
  DIR *d = scan >= 0 ? fdopendir(scan) : NULL;
  if (!d) { if (scan >= 0) close(scan); return; }
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *n = e->d_name;
    if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
    struct stat st;
    if (fstatat(from, n, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (mkdirat(to, n, 0700) != 0 && errno != EEXIST) { say("fill volume: mkdir %s: %s", n, strerror(errno)); continue; }
      int f = openat(from, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      int t = openat(to, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (f >= 0 && t >= 0) {
        copy_tree(f, t, depth + 1);
        if (fchown(t, st.st_uid, st.st_gid) != 0 || fchmod(t, st.st_mode & 07777) != 0) say("fill volume: owner of %s: %s", n, strerror(errno));
      }
      if (f >= 0) close(f);
      if (t >= 0) close(t);
    } else if (S_ISREG(st.st_mode)) {
      int f = openat(from, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      int t = openat(to, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (f >= 0 && t >= 0) {
        off_t left = st.st_size;
        while (left > 0) {
          ssize_t w = sendfile(t, f, NULL, left > (1 << 30) ? (1 << 30) : (size_t)left);
          if (w <= 0) { say("fill volume: copy %s: %s", n, strerror(errno)); break; }
          left -= w;
        }
        if (fchown(t, st.st_uid, st.st_gid) != 0 || fchmod(t, st.st_mode & 07777) != 0) say("fill volume: owner of %s: %s", n, strerror(errno));
      } else {
        say("fill volume: open %s: %s", n, strerror(errno));
      }
      if (f >= 0) close(f);
      if (t >= 0) close(t);
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t len = readlinkat(from, n, target, sizeof target - 1);
      if (len < 0) continue;
      target[len] = 0;
      if (symlinkat(target, to, n) != 0 || fchownat(to, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0) say("fill volume: link %s: %s", n, strerror(errno));
    }
    /* devices, FIFOs and sockets are not copied */
  }
  closedir(d);
}

/* A fresh ext filesystem holds nothing but an empty lost+found; returns 1 for that (or nothing). */
static int fresh_volume(const char *mp) {
  DIR *d = opendir(mp);
  if (!d) return 0;
  struct dirent *e;
  int fresh = 1;
  while (fresh && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (strcmp(e->d_name, "lost+found") != 0) { fresh = 0; break; }
    char lf[4200];
    snprintf(lf, sizeof lf, "%s/lost+found", mp);
    DIR *l = opendir(lf);
    struct dirent *x;
    while (l && (x = readdir(l)))
      if (strcmp(x->d_name, ".") && strcmp(x->d_name, "..")) fresh = 0;
    if (l) closedir(l);
  }
  closedir(d);
  return fresh;
}

/* Mounts every volume before the app starts; an app never runs without its data. */
static void mount_volumes(struct config *c) {
  for (int i = 0; i < c->nmounts; i++) {
    char spec[4200];
    snprintf(spec, sizeof spec, "%s", c->mounts[i]);
    char *fstype = strchr(spec, ':');
    char *mp = fstype ? strchr(fstype + 1, ':') : NULL;
    if (!mp) { errno = EINVAL; fail(125, "bad mount record"); }
    *fstype++ = 0;
    *mp++ = 0;
    char dev[300];
    if (find_disk(spec, dev, sizeof dev) != 0) { errno = ENODEV; say("no disk with %s%s for %s", strncmp(spec, "label=", 6) ? "serial " : "", spec, mp); fail(125, "find volume"); }
    /* the image's own directory there, if it has one, to fill a fresh volume from */
    int below = open(mp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    mkdir_p(mp);
    if (mount(dev, mp, fstype, MS_NOATIME, NULL) != 0) { say("mount %s (%s) on %s", dev, fstype, mp); fail(125, "mount volume"); }
    if (below >= 0 && !strncmp(fstype, "ext", 3) && fresh_volume(mp)) {
      char lf[4200];
      snprintf(lf, sizeof lf, "%s/lost+found", mp);
      rmdir(lf); /* e2fsck makes it again if it is ever needed; initdb wants an empty directory */
      int top = open(mp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      struct stat st;
      if (top >= 0 && fstat(below, &st) == 0) {
        copy_tree(below, top, 0);
        if (fchown(top, st.st_uid, st.st_gid) != 0 || fchmod(top, st.st_mode & 07777) != 0) say("fill volume %s: %s", mp, strerror(errno));
        say("volume at %s was empty: filled from the image", mp);
      }
      if (top >= 0) close(top);
    }
    if (below >= 0) close(below);
  }
}

static void unmount_volumes(struct config *c) {
  for (int i = c->nmounts - 1; i >= 0; i--) {
    const char *mp = strchr(c->mounts[i], ':');
    mp = mp ? strchr(mp + 1, ':') : NULL;
    if (mp && umount2(mp + 1, 0) != 0) say("unmount %s: %s", mp + 1, strerror(errno));
  }
}

/*
 * The image root on a read-only disk: the initramfs then holds only this init and /unik/root,
 * which names the disk's filesystem. The disk (serial unik-root) is mounted read-only, a tmpfs
 * overlay on top makes it writable, and the merged tree becomes the root: /dev, /proc, /sys
 * and /tmp move into it, then it is moved over / and chrooted into (an initramfs cannot be
 * pivot_root'ed away). Nothing happens for an image whose root is the initramfs itself.
 */
static void switch_to_disk_root(void) {
  size_t len = 0;
  char *fs = read_file("/unik/root", &len);
  if (!fs) return;
  while (len > 0 && (fs[len - 1] == '\n' || fs[len - 1] == ' ')) fs[--len] = 0;
  if (strcmp(fs, "erofs") != 0) { errno = EINVAL; say("unknown root disk filesystem %s", fs); fail(125, "root disk"); }
  char dev[300];
  if (find_disk("unik-root", dev, sizeof dev) != 0) { errno = ENODEV; fail(125, "find the root disk (virtio serial unik-root)"); }
  mkdir("/unik/lower", 0755);
  mkdir("/unik/rw", 0755);
  mkdir("/unik/merged", 0755);
  if (mount(dev, "/unik/lower", fs, MS_RDONLY, NULL) != 0) fail(125, "mount the root disk");
  if (mount("tmpfs", "/unik/rw", "tmpfs", 0, "mode=0755") != 0) fail(125, "mount the overlay's tmpfs");
  mkdir("/unik/rw/upper", 0755);
  mkdir("/unik/rw/work", 0755);
  if (mount("overlay", "/unik/merged", "overlay", 0, "lowerdir=/unik/lower,upperdir=/unik/rw/upper,workdir=/unik/rw/work") != 0) fail(125, "mount the root overlay");
  const char *moved[] = {"/dev", "/proc", "/sys", "/tmp"};
  for (size_t i = 0; i < sizeof moved / sizeof *moved; i++) {
    char to[64];
    snprintf(to, sizeof to, "/unik/merged%s", moved[i]);
    mkdir(to, 0755);
    if (mount(moved[i], to, NULL, MS_MOVE, NULL) != 0) { say("move %s", moved[i]); fail(125, "move a mount into the disk root"); }
  }
  if (chdir("/unik/merged") != 0 || mount(".", "/", NULL, MS_MOVE, NULL) != 0 || chroot(".") != 0 || chdir("/") != 0) fail(125, "switch to the disk root");
  free(fs);
}

/* What servers expect of a root: /run (and /var/run leading to it), /dev/fd, many open files. */
static void server_basics(void) {
  struct stat st;
  mkdir("/run", 0755);
  if (lstat("/var/run", &st) != 0) {
    mkdir("/var", 0755);
    if (symlink("/run", "/var/run") != 0) say("symlink /var/run: %s", strerror(errno));
  }
  const char *links[][2] = {{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"}, {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"}};
  for (size_t i = 0; i < sizeof links / sizeof *links; i++) (void)!symlink(links[i][0], links[i][1]);
  /* the kernel's 1024 is a desktop's; servers (nginx, PostgreSQL, Java) want thousands */
  struct rlimit nofile = {65536, 524288};
  if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) say("raise RLIMIT_NOFILE: %s", strerror(errno));
}

/* In the app's child: drop to the image's user (groups first, while still allowed to). */
static void drop_privileges(struct config *c) {
  if (!c->has_user) return;
  if (setgroups(c->ngroups, c->groups) != 0 || setgid(c->gid) != 0 || setuid(c->uid) != 0) {
    say("run as user %u:%u: %s", (unsigned)c->uid, (unsigned)c->gid, strerror(errno));
    _exit(126);
  }
}

/*
 * `--slim` profiling: the paths the app opens on the image root (the root mount only: /dev,
 * /proc, /tmp and volumes are other mounts), each said once on the console. The host keeps
 * those files in the slim image; an app that prints such lines itself only names files of its
 * own image.
 */
#define SEEN_SLOTS 65536
static unsigned long seen[SEEN_SLOTS];

static int seen_before(const char *path) {
  unsigned long h = 5381;
  for (const char *p = path; *p; p++) h = h * 33 + (unsigned char)*p;
  if (!h) h = 1;
  for (unsigned long i = 0; i < SEEN_SLOTS; i++) {
    unsigned long *slot = &seen[(h + i) % SEEN_SLOTS];
    if (*slot == h) return 1; /* a hash collision only costs a line not said: the file is then an `--keep` away */
    if (!*slot) { *slot = h; return 0; }
  }
  return 1;
}

static int start_profile(void) {
  /* event fds non-blocking: an app's FIFO must never block PID 1; no queue limit, and an overflow is said */
  int fan = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE, O_RDONLY | O_NONBLOCK | O_LARGEFILE | O_CLOEXEC);
  if (fan < 0) { say("profile: fanotify: %s", strerror(errno)); return -1; }
  if (fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN | FAN_OPEN_EXEC, AT_FDCWD, "/") != 0) {
    say("profile: mark /: %s", strerror(errno));
    close(fan);
    return -1;
  }
  say("profile: recording the files the app opens");
  return fan;
}

static void drain_profile(int fan) {
  char buf[8192] __attribute__((aligned(8)));
  /* a bounded share per wake-up: the app's signals and the host's commands are served in between */
  for (int rounds = 0; rounds < 64; rounds++) {
    ssize_t n = read(fan, buf, sizeof buf);
    if (n <= 0) return;
    struct fanotify_event_metadata *m = (struct fanotify_event_metadata *)buf;
    for (; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
      if (m->mask & FAN_Q_OVERFLOW) say("profile: events lost");
      if (m->fd < 0) continue;
      char link[64], path[4096], line[4096 * 4 + 32];
      snprintf(link, sizeof link, "/proc/self/fd/%d", m->fd);
      ssize_t len = readlink(link, path, sizeof path - 1);
      close(m->fd);
      if (len <= 0) continue;
      path[len] = 0;
      if (path[0] != '/' || seen_before(path)) continue;
      size_t o = 0;
      o += snprintf(line, sizeof line, "unik-init: opened ");
      for (ssize_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch < 0x20 || ch >= 0x7f || ch == '\\') o += snprintf(line + o, sizeof line - o, "\\x%02x", ch);
        else line[o++] = (char)ch;
      }
      line[o++] = '\n';
      (void)!write(2, line, o);
    }
  }
}

/* Reads host commands from the control channel; returns the signal to send, or 0. */
static int read_command(int stop_signal) {
  static char line[128];
  static size_t used;
  char buf[64];
  ssize_t n = read(control_fd, buf, sizeof buf);
  int sig = 0;
  for (ssize_t i = 0; i < n; i++) {
    if (buf[i] == '\n' || buf[i] == '\r') {
      line[used] = 0;
      if (!strcmp(line, "stop")) sig = stop_signal;
      else if (!strcmp(line, "kill")) sig = SIGKILL;
      else if (!strncmp(line, "signal ", 7) && atoi(line + 7) > 0 && atoi(line + 7) < 65) sig = atoi(line + 7);
      used = 0;
    } else if (used < sizeof line - 1) {
      line[used++] = buf[i];
    }
  }
  return sig;
}

int main(void) {
  if (getpid() != 1) {
    fprintf(stderr, "unik-init must run as PID 1 inside a unikernel\n");
    return 2;
  }
  mount_or_warn("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  open_console();
  mount_or_warn("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_or_warn("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_or_warn("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mount_or_warn("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  open_control();
  /* one app owns the VM: let it reserve address space freely (the Go runtime's arena map is
   * refused by the default heuristic in small VMs); real shortage still meets the OOM killer */
  int oc = open("/proc/sys/vm/overcommit_memory", O_WRONLY | O_CLOEXEC);
  if (oc >= 0) { (void)!write(oc, "1", 1); close(oc); }

  static struct config c;
  size_t len = 0;
  /* read before the switch to a disk root hides the initramfs */
  char *raw = read_file("/unik/config", &len);
  switch_to_disk_root();
  server_basics();
  if (!raw && cmdline_has("unik.wait")) {
    raw = wait_for_config(&len);
    clock_gettime(CLOCK_MONOTONIC, &config_read_at);
    if (!raw) fail(127, "read the config from the control channel");
  }
  if (!raw) {
    /* the config is the last archive the kernel unpacks: without it the initramfs did not fit */
    say("no /unik/config: the image root did not unpack completely (too little memory for this image?)");
    fail(127, "read /unik/config");
  }
  if (cmdline_has("unik.drive")) {
    size_t dlen = 0;
    char *drive = read_config_drive(&dlen);
    if (drive) parse_config(&c, drive, dlen);
    parse_config_as(&c, raw, len, 1);
  } else {
    parse_config(&c, raw, len);
  }
  finish_env(&c);
  if (c.nargs == 0) { errno = EINVAL; fail(127, "no program in /unik/config"); }

  set_clock(c.time, c.now);
  reseed(c.seed);
  if (c.hostname) sethostname(c.hostname, strlen(c.hostname));
  configure_network(&c);
  if (!c.net_ip && !c.net_dns) dns_from_dhcp();
  mount_volumes(&c);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  int fan = c.profile ? start_profile() : -1;

  pid_t app = fork();
  if (app < 0) fail(127, "fork");
  if (app == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    drop_privileges(&c);
    if (c.cwd && chdir(c.cwd) != 0) say("chdir %s: %s", c.cwd, strerror(errno));
    execve(c.args[0], c.args, c.env);
    say("exec %s: %s", c.args[0], strerror(errno));
    _exit(127);
  }
  control("unik:ready %d", (int)app);
  int stop_signal = c.stop_signal ? c.stop_signal : SIGTERM;

  int code = -1;
  while (code < 0) {
    struct pollfd fds[3] = {{sfd, POLLIN, 0}, {control_fd, POLLIN, 0}, {fan, POLLIN, 0}};
    if (poll(fds, 3, -1) < 0 && errno != EINTR) break; /* a negative fd is skipped */
    if (fan >= 0 && (fds[2].revents & POLLIN)) drain_profile(fan);
    if (control_fd >= 0 && (fds[1].revents & POLLIN)) {
      int sig = read_command(stop_signal);
      if (sig) kill(app, sig);
    }
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == sizeof si) {
      if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) kill(app, stop_signal);
    }
    /* reap every child: orphans are re-parented to PID 1 */
    int status;
    pid_t p;
    while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
      if (p != app) continue;
      code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
  }
  if (fan >= 0) drain_profile(fan);
  say("app exited with status %d", code);
  kill(-1, SIGKILL);
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {} /* all were SIGKILLed: they go at once */
  unmount_volumes(&c);
  sync();
  /* reported only after the sync: from here the host may end the VM without losing data */
  control("unik:exit %d", code);
  power_off();
  return 0;
}
