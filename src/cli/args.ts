// Command-line parsing for the CLI: each command declares its flags once (name, value, help),
// and the same declaration parses the arguments, rejects what it does not know in plain words
// and prints the command's help. A flag that takes a value always takes the next argument, so
// `--rank -1` reaches the value check ("must be a positive integer") instead of being mistaken
// for another flag.

export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose help explains the fix. */
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface FlagSpec {
  name: string;
  /** Name of the value in the help (`--calib <file>`); absent for a switch. */
  arg?: string;
  help: string;
}

export interface CommandSpec {
  name: string;
  /** `<model>` or `<model> [<model> ...]`. */
  positionals: { name: string; min: number; max: number };
  /** One line for the list of commands. */
  brief: string;
  summary: string;
  /** Extra usage lines (other forms of the command). */
  forms?: string[];
  flags: FlagSpec[];
  /** What `--json` prints, when the command has it. */
  json?: string;
}

export interface Parsed {
  positionals: string[];
  values: Map<string, string | true>;
  help: boolean;
}

/** Edit distance, for "did you mean --ratio?". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

function suggestion(name: string, flags: FlagSpec[]): string {
  const best = flags.map((f) => ({ f: f.name, d: distance(name, f.name) })).sort((x, y) => x.d - y.d)[0];
  return best && best.d <= Math.max(2, Math.floor(name.length / 3)) ? `; did you mean --${best.f}?` : '';
}

export function parseCommand(spec: CommandSpec, args: string[]): Parsed {
  const byName = new Map(spec.flags.map((f) => [f.name, f]));
  const values = new Map<string, string | true>();
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (a === '-h' || a === '--help') {
      help = true;
      continue;
    }
    if (!a.startsWith('-') || a === '-') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = (eq > 0 ? a.slice(0, eq) : a).replace(/^--?/, '');
    const flag = byName.get(name);
    if (!flag || !a.startsWith('--')) {
      throw new UsageError(`${spec.name} has no option ${a.slice(0, eq > 0 ? eq : undefined)}${flag ? `; write --${name}` : suggestion(name, spec.flags)}`, spec.name);
    }
    if (values.has(name)) throw new UsageError(`--${name} is given twice`, spec.name);
    if (!flag.arg) {
      if (eq > 0) throw new UsageError(`--${name} is a switch and takes no value (got "${a.slice(eq + 1)}")`, spec.name);
      values.set(name, true);
      continue;
    }
    const value = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value: --${name} ${flag.arg}`, spec.name);
    values.set(name, value);
  }
  if (!help) {
    const { name, min, max } = spec.positionals;
    if (positionals.length < min) throw new UsageError(`${spec.name} needs ${min === 1 && max === 1 ? 'a' : 'at least one'} ${name}`, spec.name);
    if (positionals.length > max) throw new UsageError(`${spec.name} takes ${max === 0 ? 'no' : max === 1 ? 'one' : `at most ${max}`} ${name}${max === 0 ? ' argument, only options' : ''}; unexpected "${positionals[max]}"`, spec.name);
  }
  return { positionals, values, help };
}

/** `prune --help`: the forms, the summary, every flag with its help, and what --json prints. */
export function commandHelp(spec: CommandSpec, program: string): string {
  const pos = spec.positionals.max > 1 ? ` <${spec.positionals.name}> [<${spec.positionals.name}> ...]` : spec.positionals.max === 1 ? ` <${spec.positionals.name}>` : '';
  const lines = [`usage: ${program} ${spec.name}${pos} [options]`, ...(spec.forms ?? []).map((f) => `       ${program} ${spec.name} ${f}`), '', spec.summary, '', 'options:'];
  const left = spec.flags.map((f) => `  --${f.name}${f.arg ? ` ${f.arg}` : ''}`);
  const width = Math.min(30, Math.max('  -h, --help'.length, ...left.map((l) => l.length)) + 2);
  spec.flags.forEach((f, i) => lines.push(left[i].length >= width ? `${left[i]}\n${' '.repeat(width)}${f.help}` : `${left[i].padEnd(width)}${f.help}`));
  lines.push(`${'  -h, --help'.padEnd(width)}this help`);
  if (spec.json) lines.push('', `--json: ${spec.json}`);
  return lines.join('\n');
}
