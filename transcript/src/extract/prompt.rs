//! The shell's prompt, learned from the session itself.
//!
//! A fixed list of closing glyphs (`$ # % >`) fails both ways: themed prompts end in an arrow
//! and a git branch (`➜  src git:(main) ✗`), and programs end theirs in `>` or `$` too
//! (`mysql>`, `>>>`). Instead, the text in front of the cursor where the session's first
//! command line was typed (or what OSC 133 marks delimit) is the shell's prompt, and a prompt
//! seen again (exactly, or changed only where prompts change: the directory, the exit status,
//! the branch, the time) is the shell's again. A command known to change the prompt (`PS1=`,
//! `source`, a nested shell: [`changes_prompt`]) lets the next new prompt be learned too.

/// Prompts remembered (newest first); a session that keeps changing its prompt forgets the
/// oldest.
const MAX_PROMPTS: usize = 32;

/// How a prompt candidate relates to the learned ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Match {
    No,
    /// Shares the stable part of a learned prompt (a directory or status changed).
    Similar,
    /// Ends with a learned prompt: output without a final newline, or a prompt drawn right
    /// after another one (dash reading a typed-ahead line).
    EndsWith,
    Exact,
}

impl Match {
    pub(crate) fn is_prompt(self) -> bool {
        self != Match::No
    }
}

#[derive(Debug, Default)]
pub(crate) struct Prompts {
    /// Learned prompts as the row showed them left of the input (trailing blanks kept).
    known: Vec<String>,
    /// Their styles (runs of colours and attributes), where seen: the same shape in other
    /// words (a short directory name that changed) is the same prompt.
    styles: Vec<Vec<u32>>,
    /// A right-side prompt (zsh RPROMPT, fish's right prompt) as last seen at the right edge.
    pub(crate) right: Option<String>,
}

impl Prompts {
    pub(crate) fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    pub(crate) fn learn(&mut self, prompt: &str) {
        self.learn_styled(prompt, &[]);
    }

    /// Learns `prompt`, drawn in `style` (empty when not known).
    pub(crate) fn learn_styled(&mut self, prompt: &str, style: &[u32]) {
        if prompt.trim().is_empty() {
            return;
        }
        if let Some(at) = self.known.iter().position(|p| p == prompt) {
            let p = self.known.remove(at);
            let mut st = self.styles.remove(at);
            if !style.is_empty() {
                st = style.to_vec();
            }
            self.known.insert(0, p);
            self.styles.insert(0, st);
            return;
        }
        self.known.insert(0, prompt.to_owned());
        self.styles.insert(0, style.to_vec());
        self.known.truncate(MAX_PROMPTS);
        self.styles.truncate(MAX_PROMPTS);
    }

    /// Like [`Prompts::classify`], and also similar when `candidate` is drawn in the same
    /// colours as a learned prompt and ends in the same character: `usr › ` after `tmp › `,
    /// cyan then plain both times (a program's own prompt is rarely coloured like the
    /// shell's).
    pub(crate) fn classify_styled(&self, candidate: &str, style: &[u32]) -> Match {
        let m = self.classify(candidate);
        if m != Match::No || !is_styled(style) {
            return m;
        }
        let last = candidate.trim_end().chars().last();
        let same = self
            .known
            .iter()
            .zip(&self.styles)
            .any(|(k, s)| s.as_slice() == style && k.trim_end().chars().last() == last);
        if same { Match::Similar } else { Match::No }
    }

    /// Whether a learned prompt ends in the same character as `candidate` (after `cd`, the
    /// directory in a prompt changes and its end stays).
    pub(crate) fn same_ending(&self, candidate: &str) -> bool {
        let last = candidate.trim_end().chars().last();
        last.is_some()
            && self
                .known
                .iter()
                .any(|k| k.trim_end().chars().last() == last)
    }

    /// How `candidate` (the text left of the cursor where a line starts) matches.
    pub(crate) fn classify(&self, candidate: &str) -> Match {
        let c = candidate.trim_end();
        if c.is_empty() {
            return Match::No;
        }
        let mut best = Match::No;
        for known in &self.known {
            let k = known.trim_end();
            let m = if c == k {
                Match::Exact
            } else if k.chars().count() >= 2 && c.ends_with(k) {
                Match::EndsWith
            } else if similar(c, k) {
                Match::Similar
            } else {
                Match::No
            };
            best = best.max(m);
            if best == Match::Exact {
                break;
            }
        }
        best
    }

    /// The length in bytes of a learned prompt at the start of `row` (exactly as learned, or
    /// a similar one ending where the learned one ends: in its closing characters), longest
    /// first.
    pub(crate) fn at_start(&self, row: &str) -> Option<usize> {
        let mut best: Option<usize> = None;
        for known in &self.known {
            let len = if row.starts_with(known.as_str()) {
                Some(known.len())
            } else if row == known.trim_end() {
                // An empty line's row: the prompt's trailing blanks were trimmed.
                Some(row.len())
            } else {
                similar_prefix(row, known)
            };
            if let Some(len) = len
                && best.is_none_or(|b| len > b)
            {
                best = Some(len);
            }
        }
        best
    }

    /// Learned prompts, exactly as learned.
    pub(crate) fn known(&self) -> impl Iterator<Item = &str> {
        self.known.iter().map(String::as_str)
    }
}

/// A style with colour or attributes in it (not all default).
fn is_styled(style: &[u32]) -> bool {
    style.len() >= 2 || style.first().is_some_and(|&s| s != 0)
}

/// Whether `command` changes the working directory (or the branch), which prompts show.
pub(crate) fn changes_directory(command: &str) -> bool {
    command.split(['\n', ';', '&', '|']).any(|part| {
        let mut words = part.split_whitespace();
        match words.next() {
            Some("cd" | "pushd" | "popd" | "z" | "j" | "zoxide" | "chdir") => true,
            Some("git") => matches!(
                words.next(),
                Some("checkout" | "switch" | "stash" | "commit" | "merge" | "rebase" | "pull")
            ),
            _ => false,
        }
    })
}

/// The two prompts share a beginning or an ending long enough to be the same prompt with a
/// changed middle: `/usr kt$` and `/tmp kt$`, `root@vm /src#` and `root@vm /src [1]#`,
/// `➜  tmp` and `➜  repo git:(main) ✗`.
pub(crate) fn similar(a: &str, b: &str) -> bool {
    // One ending where the other goes on is a prompt with something typed after it.
    if a.starts_with(b) || b.starts_with(a) {
        return false;
    }
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let shorter = a.len().min(b.len());
    if shorter < 2 {
        return false;
    }
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(shorter - prefix)
        .take_while(|(x, y)| x == y)
        .count();
    let stable = prefix + suffix;
    (prefix >= 3 || suffix >= 3) && stable * 2 >= shorter
}

/// Where a prompt similar to `known` ends at the start of `row`: of the prefixes of `row` that
/// end at a word boundary and are similar to `known`, one that ends in the same character
/// (`#`, `$`, `❯`), else the one closest to it in length.
fn similar_prefix(row: &str, known: &str) -> Option<usize> {
    let k = known.trim_end();
    let k_len = k.chars().count() as i64;
    let k_last = k.chars().last();
    let trailing = known.len() - k.len();
    let mut best: Option<((bool, i64), usize)> = None;
    for (i, c) in row.char_indices().take(256) {
        if c != ' ' || i == 0 || row[..i].ends_with(' ') {
            continue;
        }
        let candidate = &row[..i];
        if !similar(candidate, k) {
            continue;
        }
        let score = (
            candidate.chars().last() == k_last,
            -(candidate.chars().count() as i64 - k_len).abs(),
        );
        if best.is_none_or(|(b, _)| score > b) {
            // Keep the blanks that follow the learned prompt.
            let blanks = row[i..]
                .chars()
                .take_while(|c| *c == ' ')
                .count()
                .min(trailing);
            best = Some((score, i + blanks));
        }
    }
    best.map(|(_, end)| end)
}

/// The continuation prompts shells print: `> ` (bash, dash, ash, mksh) and zsh's `%_> `
/// (`for> `, `dquote> `, `heredoc> `, `cmdand cmdor> `, …).
pub(crate) fn is_continuation_prompt(prompt: &str) -> bool {
    let p = prompt.trim_end();
    p == ">"
        || p.strip_suffix('>').is_some_and(|words| {
            !words.is_empty()
                && words.len() <= 40
                && words.split(' ').all(|w| {
                    matches!(
                        w,
                        "for"
                            | "while"
                            | "until"
                            | "if"
                            | "then"
                            | "else"
                            | "elif"
                            | "do"
                            | "case"
                            | "select"
                            | "repeat"
                            | "foreach"
                            | "function"
                            | "subsh"
                            | "cursh"
                            | "cmdsubst"
                            | "cmdand"
                            | "cmdor"
                            | "pipe"
                            | "quote"
                            | "dquote"
                            | "bquote"
                            | "heredoc"
                            | "heredocd"
                            | "math"
                            | "mathsubst"
                            | "array"
                            | "brace"
                            | "braceparam"
                            | "always"
                    )
                })
        })
}

/// Prompts ending like a shell's (`$ # % >` or a themed glyph): a line typed at one that the
/// session has not shown to be the shell's is an answer to a program, but not surely.
pub(crate) fn looks_like_a_prompt(prompt: &str) -> bool {
    matches!(
        prompt.trim_end().chars().last(),
        Some('$' | '#' | '%' | '>' | '❯' | '»' | '→' | 'λ' | '➜' | '✗' | ')')
    )
}

/// Shells and what starts one: after such a command an unfamiliar prompt is the new shell's.
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "pdksh", "oksh", "yash", "fish", "tcsh",
    "csh", "busybox", "nu", "xonsh", "elvish",
];
const LAUNCHERS: &[&str] = &[
    "su",
    "sudo",
    "doas",
    "ssh",
    "login",
    "newgrp",
    "sg",
    "chroot",
    "nsenter",
    "unshare",
    "script",
    "screen",
    "tmux",
    "toolbox",
    "distrobox",
    "nix-shell",
    "machinectl",
    "runuser",
    "exec",
    "source",
    ".",
    "eval",
];

/// Whether `command` may leave the session at a prompt it has not seen: it sets a prompt
/// variable, sources a file, or starts an interactive shell (directly, with `sudo -i`, `su`,
/// `ssh`, `kubectl exec -it`, `docker exec -it`, ...).
pub(crate) fn changes_prompt(command: &str) -> bool {
    const VARIABLES: &[&str] = &[
        "PS1=",
        "PROMPT=",
        "PROMPT_COMMAND",
        "RPROMPT=",
        "RPS1=",
        "PS2=",
        "fish_prompt",
        "fish_right_prompt",
        "starship",
        "powerline",
        "oh-my-",
        "promptinit",
        "precmd",
        "PROMPT_DIRTRIM",
    ];
    if VARIABLES.iter().any(|v| command.contains(v)) {
        return true;
    }
    command.split(['\n', ';', '&', '|']).any(|part| {
        let words: Vec<&str> = part.split_whitespace().collect();
        starts_shell(&words)
    })
}

fn starts_shell(words: &[&str]) -> bool {
    // Skip `VAR=value` assignments and `env`/`command`/`builtin` wrappers.
    let mut i = 0;
    while let Some(w) = words.get(i) {
        let base = w.rsplit('/').next().unwrap_or(w);
        if w.contains('=') && !w.starts_with('=')
            || matches!(base, "env" | "command" | "builtin" | "nohup")
        {
            i += 1;
            continue;
        }
        break;
    }
    let Some(first) = words.get(i) else {
        return false;
    };
    let name = first.rsplit('/').next().unwrap_or(first);
    let args = &words[i + 1..];
    let interactive = !args.iter().any(|a| {
        *a == "-c"
            || (a.starts_with('-') && !a.starts_with("--") && a.contains('c') && a.len() <= 4)
    });
    if SHELLS.contains(&name) {
        return interactive;
    }
    if LAUNCHERS.contains(&name) {
        return true;
    }
    match name {
        "kubectl" | "oc" | "docker" | "podman" | "nerdctl" | "crictl" => {
            args.iter()
                .any(|a| matches!(*a, "exec" | "run" | "attach" | "debug"))
                && args.iter().any(|a| {
                    a.starts_with('-') && !a.starts_with("--") && a.contains('t') || *a == "--tty"
                })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learned(prompts: &[&str]) -> Prompts {
        let mut p = Prompts::default();
        for prompt in prompts {
            p.learn(prompt);
        }
        p
    }

    #[test]
    fn changed_prompts_are_recognised_and_program_prompts_are_not() {
        let p = learned(&["kt$ "]);
        assert_eq!(p.classify("kt$ "), Match::Exact);
        assert_eq!(p.classify("kt$ kt$ "), Match::EndsWith);
        assert_eq!(p.classify("outputkt$ "), Match::EndsWith);
        for program in [
            ">>> ",
            "Name? ",
            "mysql> ",
            "Password: ",
            "> ",
            "db> ",
            "",
            "   ",
            "kt$ cat",
        ] {
            assert_eq!(p.classify(program), Match::No, "{program:?}");
        }
        let p = learned(&["/tmp kt$ "]);
        assert_eq!(p.classify("/usr/lib kt$ "), Match::Similar);
        let p = learned(&["➜  tmp git:(main) ✗ "]);
        assert_eq!(p.classify("➜  usr "), Match::Similar);
        assert_eq!(p.classify("➜  kx git:(main) ✗ "), Match::Similar);
        assert_eq!(p.classify(">>> "), Match::No);
        let p = learned(&["root@vm /t/kx# "]);
        assert_eq!(p.classify("root@vm /t/kx [127]# "), Match::Similar);
        assert_eq!(p.classify("postgres=# "), Match::No);
        let p = learned(&["$ "]);
        assert_eq!(
            p.classify("Amount in $ "),
            Match::No,
            "one glyph is not enough"
        );
    }

    #[test]
    fn prompts_are_found_at_the_start_of_rows() {
        let p = learned(&["kt$ ", "➜  tmp "]);
        assert_eq!(p.at_start("kt$ echo hi"), Some(4));
        let row = "➜  usr ls -l";
        assert_eq!(&row[..p.at_start(row).unwrap()], "➜  usr ");
        let p = learned(&["/tmp kt$ "]);
        let row = "/usr/lib kt$ echo hi";
        assert_eq!(&row[..p.at_start(row).unwrap()], "/usr/lib kt$ ");
        assert_eq!(p.at_start("echo hi"), None);
        let p = learned(&["root@vm /t/kx# "]);
        let row = "root@vm /t/kx [127]# exit";
        assert_eq!(&row[..p.at_start(row).unwrap()], "root@vm /t/kx [127]# ");
    }

    #[test]
    fn a_prompt_in_the_same_colours_is_the_same_prompt() {
        let mut p = Prompts::default();
        let cyan_then_plain = [7, 0];
        p.learn_styled("tmp › ", &cyan_then_plain);
        assert_eq!(p.classify("usr › "), Match::No, "too little text in common");
        assert_eq!(
            p.classify_styled("usr › ", &cyan_then_plain),
            Match::Similar
        );
        assert_eq!(
            p.classify_styled("Name › ", &[0]),
            Match::No,
            "plain: a program's"
        );
        assert_eq!(p.classify_styled("usr $ ", &cyan_then_plain), Match::No);
        assert!(p.same_ending("lib › "));
        assert!(!p.same_ending("Name? "));
        assert!(changes_directory("cd /usr"));
        assert!(changes_directory("make && cd build"));
        assert!(changes_directory("git checkout main"));
        assert!(!changes_directory("echo cd"));
    }

    #[test]
    fn continuation_prompts() {
        for p in ["> ", "for> ", "dquote> ", "cmdand cmdor> ", "heredoc> "] {
            assert!(is_continuation_prompt(p), "{p:?}");
        }
        for p in ["kt$ ", ">>> ", "mysql> ", "db> ", ""] {
            assert!(!is_continuation_prompt(p), "{p:?}");
        }
    }

    #[test]
    fn commands_that_change_the_prompt() {
        for c in [
            "PS1='new> '",
            "export PS1=x",
            "bash",
            "/bin/sh -i",
            "sudo -i",
            "su - postgres",
            "ssh db1",
            "env FOO=1 zsh",
            "source ~/.bashrc",
            ". ./env.sh",
            "kubectl exec -it web -- sh",
            "docker exec -ti c bash",
            "exec zsh",
        ] {
            assert!(changes_prompt(c), "{c:?}");
        }
        for c in [
            "ls",
            "bash -c 'echo hi'",
            "python3",
            "kubectl get pods",
            "kubectl exec web -- ls",
            "echo bash",
            "sh -ec 'true'",
        ] {
            assert!(!changes_prompt(c), "{c:?}");
        }
    }
}
