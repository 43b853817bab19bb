/** The command that makes one of unik's unprivileged system users (as scripts/setup.sh does). */
export function addSystemUserCommand(name: string): string {
  return `useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ${name}`;
}
