/** Node: where blora-studio keeps what it downloads or builds — $BLORA_CACHE, else $XDG_CACHE_HOME/blora-studio, else ~/.cache/blora-studio. */
export function bloraCacheRoot(env: Record<string, string | undefined> = typeof process !== 'undefined' ? process.env : {}): string {
  const home = env.HOME ?? env.USERPROFILE ?? '.';
  return env.BLORA_CACHE ?? `${env.XDG_CACHE_HOME ?? `${home}/.cache`}/blora-studio`;
}
