/**
 * `mps-injector completion bash|zsh`: a shell completion script generated from the command
 * tree itself, so every command, flag and flag choice stays in step with the CLI.
 * zsh loads the bash function through bashcompinit, as kubectl's users often do.
 */
import type { Command, Option } from 'commander';
import { CliError } from './cliError.js';

interface CommandNode {
  /** Words from the root to this command, e.g. ['simulate', 'generate-trace']. */
  path: string[];
  words: string[];
}

function optionWords(option: Option): string[] {
  return [option.short, option.long].filter((w): w is string => w !== undefined);
}

function walk(command: Command, path: string[], nodes: CommandNode[], choices: Map<string, string[]>): void {
  const subcommands = command.commands.map((c) => c.name());
  const options = command.options.flatMap(optionWords);
  for (const option of command.options) {
    const values = (option as Option & { argChoices?: string[] }).argChoices;
    if (values !== undefined) for (const word of optionWords(option)) choices.set(`${path.join(' ')}|${word}`, values);
  }
  nodes.push({ path, words: [...subcommands, ...options, '--help'] });
  for (const sub of command.commands) walk(sub, [...path, sub.name()], nodes, choices);
}

const functionName = (bin: string): string => `_${bin.replace(/[^A-Za-z0-9]/g, '_')}_completion`;

/** A bash completion script for the program, installed for each of `bins`. */
export function bashCompletion(program: Command, bins: readonly string[]): string {
  const nodes: CommandNode[] = [];
  const choices = new Map<string, string[]>();
  walk(program, [], nodes, choices);
  const fn = functionName(bins[0] ?? program.name());
  const known = [...new Set(nodes.flatMap((n) => n.path))].join(' ');
  const cases = nodes.map((n) => `    "${n.path.join(' ')}") words="${n.words.join(' ')}" ;;`).join('\n');
  const choiceCases = [...choices].map(([key, values]) => `    "${key}") COMPREPLY=( $(compgen -W "${values.join(' ')}" -- "$cur") ); return ;;`).join('\n');
  return `# ${program.name()} completion for bash. Load it with: source <(${bins[0] ?? program.name()} completion bash)
${fn}() {
  local cur prev path word words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  path=""
  for word in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case " ${known} " in
      *" $word "*) path="\${path:+$path }$word" ;;
    esac
  done
  case "$path|$prev" in
${choiceCases}
  esac
  case "$path" in
${cases}
    *) words="" ;;
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
${bins.map((bin) => `complete -o default -F ${fn} ${bin}`).join('\n')}
`;
}

/** The zsh script: the bash function through bashcompinit. */
export function zshCompletion(program: Command, bins: readonly string[]): string {
  return `#compdef ${bins.join(' ')}
# ${program.name()} completion for zsh. Load it with: source <(${bins[0] ?? program.name()} completion zsh)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(program, bins)}`;
}

export function registerCompletionCommand(program: Command, bins: readonly string[]): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(mps-injector completion bash), or zsh')
    .argument('<shell>', 'bash or zsh')
    .action((shell: string) => {
      if (shell === 'bash') process.stdout.write(bashCompletion(program, bins));
      else if (shell === 'zsh') process.stdout.write(zshCompletion(program, bins));
      else throw new CliError(`completion supports bash and zsh, not "${shell}"`);
    });
}
