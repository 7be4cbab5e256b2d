//! The broker's man pages and shell completions, generated so that they
//! cannot drift from the code: `iam-pgbroker(8)` from the argument
//! definitions (clap_mangen), `iam-pgbroker.toml(5)` from the shipped,
//! commented example configuration (`systemd/config.toml`, which a test
//! parses with every key uncommented). The RPM build calls:
//!
//! ```text
//! iam-pgbroker --generate-man DIR          # DIR/iam-pgbroker.8, DIR/iam-pgbroker.toml.5
//! iam-pgbroker --generate-completions bash > iam-pgbroker
//! ```

use std::io::{self, Write};
use std::path::Path;

/// The example configuration the package ships.
pub const EXAMPLE_CONFIG: &str = include_str!("../../systemd/config.toml");

/// Writes `dir/iam-pgbroker.8` for `command` and `dir/iam-pgbroker.toml.5`.
pub fn man_pages(command: clap::Command, dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(command.clone()).section("8");
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    for sub in command.get_subcommands() {
        let _ = writeln!(
            page,
            ".SH \"{}\"",
            roff_escape(&format!("iam-pgbroker {}", sub.get_name())).to_uppercase()
        );
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            let _ = writeln!(page, "{}", roff_escape(&about.to_string()));
        }
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let name = match (arg.get_long(), arg.get_short()) {
                (Some(l), Some(s)) => format!("\\-{s}, \\-\\-{l}"),
                (Some(l), None) => format!("\\-\\-{l}"),
                (None, Some(s)) => format!("\\-{s}"),
                (None, None) => arg.get_id().to_string().to_uppercase(),
            };
            let _ = writeln!(page, ".TP\n\\fB{name}\\fR");
            if let Some(help) = arg.get_long_help().or(arg.get_help()) {
                let _ = writeln!(page, "{}", roff_escape(&help.to_string()));
            }
        }
    }
    let _ = writeln!(
        page,
        ".SH FILES\n/etc/iam\\-pgbroker/config.toml, /etc/iam\\-pgbroker/policy.d/*.toml (see iam\\-pgbroker.toml(5)); /run/iam\\-pgbroker/pgbroker.sock; /var/log/iam\\-pgbroker/audit.jsonl\n.SH \"SEE ALSO\"\niam\\-pgbroker.toml(5), iam\\-pg(1), systemctl(1), journalctl(1); /usr/share/doc/iam\\-pgbroker/operations.md"
    );
    std::fs::write(dir.join("iam-pgbroker.8"), page)?;
    std::fs::write(dir.join("iam-pgbroker.toml.5"), config_page())
}

/// `iam-pgbroker.toml(5)`: the example configuration's comments as the
/// text, its keys as they are written.
pub fn config_page() -> String {
    let mut out = String::from(
        ".TH IAM-PGBROKER.TOML 5 \"\" \"iam-pgbroker\" \"File Formats\"\n\
         .SH NAME\niam\\-pgbroker.toml \\- configuration and policy of iam\\-pgbroker\n\
         .SH SYNOPSIS\n/etc/iam\\-pgbroker/config.toml, /etc/iam\\-pgbroker/policy.d/*.toml\n\
         .SH DESCRIPTION\nTOML. Files must be owned by root and writable by nobody else \
         (symlinks are judged by their target), or they are refused. \
         Check with \\fBiam\\-pgbroker check\\-config\\fR; apply with \\fBsystemctl reload iam\\-pgbroker\\fR. \
         What follows is the example configuration the package installs, \
         every key with its default.\n",
    );
    let mut in_code = false;
    for line in EXAMPLE_CONFIG.lines() {
        let t = line.trim_start();
        let code = t.starts_with('[')
            || t.starts_with("#[")
            || (t.starts_with('#') && t.contains(" = ") && !t.starts_with("# "))
            || (!t.starts_with('#') && !t.is_empty());
        if let Some(section) = t.strip_prefix('[').or_else(|| t.strip_prefix("#[")) {
            if in_code {
                out.push_str(".fi\n");
                in_code = false;
            }
            out.push_str(&format!(".SH \"[{}\"\n", roff_escape(section)));
            continue;
        }
        if code {
            if !in_code {
                out.push_str(".nf\n");
                in_code = true;
            }
            out.push_str(&roff_escape(line));
            out.push('\n');
        } else {
            if in_code {
                out.push_str(".fi\n");
                in_code = false;
            }
            let text = t.trim_start_matches('#').trim();
            if text.is_empty() {
                out.push_str(".PP\n");
            } else {
                out.push_str(&roff_escape(text));
                out.push('\n');
            }
        }
    }
    if in_code {
        out.push_str(".fi\n");
    }
    out.push_str(
        ".SH \"SEE ALSO\"\niam\\-pgbroker(8); /usr/share/doc/iam\\-pgbroker/configuration.md\n",
    );
    out
}

fn roff_escape(text: &str) -> String {
    let mut out = text.replace('\\', "\\e").replace('-', "\\-");
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

/// The completion script for the shell named `name` (bash, zsh, fish, …).
pub fn completions_for(
    command: clap::Command,
    name: &str,
    out: &mut impl Write,
) -> Result<(), String> {
    let shell = <clap_complete::Shell as clap::ValueEnum>::from_str(name, true)
        .map_err(|_| format!("unknown shell {name:?} (bash, zsh, fish, elvish, powershell)"))?;
    completions(command, shell, out);
    Ok(())
}

/// The completion script for `shell`.
pub fn completions(mut command: clap::Command, shell: clap_complete::Shell, out: &mut impl Write) {
    clap_complete::generate(shell, &mut command, "iam-pgbroker", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_page_has_every_section_of_the_example() {
        let page = config_page();
        for section in ["[server]", "[audit]", "[[rule]]"] {
            assert!(
                page.contains(&format!(".SH \"{section}")),
                "{section}: {page}"
            );
        }
        assert!(page.contains("anchor_interval_s"), "{page}");
    }
}
