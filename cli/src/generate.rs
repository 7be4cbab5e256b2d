//! The man page and shell completions, generated from the argument
//! definitions so that they cannot drift from `--help`. The RPM build
//! calls:
//!
//! ```text
//! iam-pg --generate-man DIR                 # writes DIR/iam-pg.1
//! iam-pg --generate-completions bash > iam-pg
//! iam-pg --generate-completions zsh > _iam-pg
//! ```
//!
//! These two are read before clap sees the arguments, so that they are in
//! neither the man page nor the completions they generate.

use crate::args::Args;
use clap::{CommandFactory, ValueEnum};
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Handles `--generate-man DIR` and `--generate-completions SHELL` as the
/// only arguments; `None` for anything else.
pub fn from_args(mut args: impl Iterator<Item = OsString>) -> Option<ExitCode> {
    let option = args.next()?;
    if option == "--list-instances" {
        return args.next().is_none().then(list_instances);
    }
    let value = args.next();
    if args.next().is_some() {
        return None;
    }
    let fail = |message: String| {
        eprintln!("iam-pg: error: {message}");
        Some(ExitCode::from(2))
    };
    match (option.to_str()?, value) {
        ("--generate-man", Some(dir)) => {
            let dir = PathBuf::from(dir);
            match man_page(&dir) {
                Ok(()) => Some(ExitCode::SUCCESS),
                Err(e) => fail(format!(
                    "cannot write the man page into {}: {e}",
                    dir.display()
                )),
            }
        }
        ("--generate-completions", Some(shell)) => {
            let name = shell.to_string_lossy();
            match clap_complete::Shell::from_str(&name, true) {
                Ok(shell) => {
                    completions(shell, &mut io::stdout().lock());
                    Some(ExitCode::SUCCESS)
                }
                Err(_) => fail(format!(
                    "unknown shell {name:?} (bash, zsh, fish, elvish, powershell)"
                )),
            }
        }
        _ => None,
    }
}

/// Writes `dir/iam-pg.1`.
pub fn man_page(dir: &Path) -> io::Result<()> {
    let command = Args::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("iam-pg.1"), page)
}

/// Writes the completion script for `shell` to `out`. The instance after
/// `-d`/`--db` is completed from what the broker says the user's rules
/// name (`iam-pg --list-instances`), in bash and zsh.
pub fn completions(shell: clap_complete::Shell, out: &mut impl Write) {
    let mut generated = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), "iam-pg", &mut generated);
    let mut text = String::from_utf8_lossy(&generated).into_owned();
    match shell {
        clap_complete::Shell::Bash => text.push_str(BASH_INSTANCES),
        clap_complete::Shell::Zsh => {
            text = text.replace(":DB:_default'", ":DB:_iam_pg_instances'");
            text.push_str(ZSH_INSTANCES);
        }
        _ => {}
    }
    let _ = out.write_all(text.as_bytes());
}

/// Completes `-d`/`--db` from the broker, then falls back to clap's.
const BASH_INSTANCES: &str = r#"
_iam_pg_with_instances() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    case "$prev" in
        -d|--db)
            COMPREPLY=( $(compgen -W "$(iam-pg --list-instances 2>/dev/null)" -- "$cur") )
            return 0
            ;;
    esac
    _iam__pg "$@"
}
complete -F _iam_pg_with_instances -o bashdefault -o default iam-pg
"#;

/// The instances the broker says the user's rules name.
const ZSH_INSTANCES: &str = r#"
_iam_pg_instances() {
    local -a instances
    instances=(${(f)"$(iam-pg --list-instances 2>/dev/null)"})
    _describe 'instance' instances
}
"#;

/// `iam-pg --list-instances`: one instance a line, what the broker says
/// the caller's rules name (shell completion calls it; errors are silent,
/// exit 1).
pub fn list_instances() -> ExitCode {
    let listed = iam_pgconnect::Config::new()
        .client_name(concat!("iam-pg/", env!("CARGO_PKG_VERSION")))
        .approvals()
        .and_then(|mut a| a.instances());
    match listed {
        Ok(instances) => {
            let mut out = io::stdout().lock();
            for i in instances {
                let _ = writeln!(out, "{}", iam_pgbroker_proto::display::escape_line(&i));
            }
            ExitCode::SUCCESS
        }
        Err(_) => ExitCode::from(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_has_options_and_examples_but_not_hidden_ones() {
        let dir = std::env::temp_dir().join(format!("iam-pg-man-{}", std::process::id()));
        man_page(&dir).unwrap();
        let page = std::fs::read_to_string(dir.join("iam-pg.1")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            page.starts_with(".ie") || page.contains(".TH iam-pg 1"),
            "{page}"
        );
        assert!(page.contains("\\-\\-write"), "{page}");
        assert!(page.contains("Examples:"), "{page}");
        assert!(!page.contains("generate"), "{page}");
    }

    #[test]
    fn completions_name_the_options() {
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh] {
            let mut out = Vec::new();
            completions(shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("--write"), "{shell}: {text}");
            assert!(text.contains("iam-pg"), "{shell}");
            assert!(!text.contains("generate-man"), "{shell}");
            assert!(text.contains("iam-pg --list-instances"), "{shell}: {text}");
        }
    }
}
