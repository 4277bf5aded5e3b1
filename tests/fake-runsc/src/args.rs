//! runsc's command line as Go's flag package reads it: global flags, a sub-command with its
//! flags, then the arguments; and the signal names `kill` takes.

use std::collections::BTreeMap;

/// runsc's sub-commands (those of 20221219); a global flag without `=` followed by one of these
/// is a boolean flag, like Go's flag package would read it.
pub(crate) const SUBCOMMANDS: &[&str] = &[
    "checkpoint",
    "create",
    "delete",
    "do",
    "events",
    "exec",
    "features",
    "flags",
    "gofer",
    "help",
    "kill",
    "list",
    "pause",
    "port-forward",
    "ps",
    "restore",
    "resume",
    "run",
    "spec",
    "start",
    "state",
    "symbolize",
    "syscalls",
    "update",
    "wait",
];
pub(crate) const BOOL_GLOBAL_FLAGS: &[&str] = &[
    "alsologtostderr",
    "debug",
    "ignore-cgroups",
    "nvproxy",
    "rootless",
    "strace",
    "systemd-cgroup",
    "TESTONLY-unsafe-nonroot",
];

/// One parsed command line.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Invocation {
    /// Global flags, unknown ones included.
    pub(crate) globals: BTreeMap<String, String>,
    pub(crate) version: bool,
    pub(crate) command: Option<String>,
    pub(crate) flags: BTreeMap<String, String>,
    pub(crate) args: Vec<String>,
}

/// The flags each sub-command accepts, and which of them are booleans.
pub(crate) fn command_flags(
    command: &str,
) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match command {
        "create" => (&["bundle", "pid-file", "console-socket", "user-log"], &[]),
        "start" | "state" | "pause" | "resume" => (&[], &[]),
        "update" => (&["resources"], &[]),
        "wait" => (&["pid", "rootpid"], &[]),
        "kill" => (&["all", "pid"], &["all"]),
        "delete" => (&["force"], &["force"]),
        "ps" => (&["format"], &[]),
        "list" => (&["quiet", "format", "sandbox"], &["quiet", "sandbox"]),
        "exec" => (
            &[
                "process",
                "detach",
                "pid-file",
                "internal-pid-file",
                "console-socket",
            ],
            &["detach"],
        ),
        "events" => (&["stats", "interval"], &["stats"]),
        _ => return None,
    })
}

pub(crate) fn flag_name(arg: &str) -> Option<&str> {
    if arg == "-" || arg == "--" {
        return None;
    }
    arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))
}

/// The flag at `argv[*i]`, or `None` where flags stop, as in Go's flag package: at the end, at
/// the first argument that is not a flag, or at `--`, which is skipped.
pub(crate) fn next_flag<'a>(argv: &'a [String], i: &mut usize) -> Option<&'a str> {
    let arg = argv.get(*i)?;
    if arg == "--" {
        *i += 1;
        return None;
    }
    flag_name(arg)
}

pub(crate) fn parse(argv: &[String]) -> Result<Invocation, String> {
    let mut inv = Invocation::default();
    let mut i = 0;
    while let Some(flag) = next_flag(argv, &mut i) {
        if let Some((k, v)) = flag.split_once('=') {
            if k == "version" {
                inv.version = v != "false";
            } else {
                inv.globals.insert(k.to_string(), v.to_string());
            }
        } else if flag == "version" {
            inv.version = true;
        } else {
            let next = argv.get(i + 1).map(String::as_str);
            let boolean = BOOL_GLOBAL_FLAGS.contains(&flag)
                || next.is_none_or(|n| n.starts_with('-') || SUBCOMMANDS.contains(&n));
            if boolean {
                inv.globals.insert(flag.to_string(), "true".to_string());
            } else {
                inv.globals
                    .insert(flag.to_string(), next.unwrap_or_default().to_string());
                i += 1;
            }
        }
        i += 1;
    }
    let Some(command) = argv.get(i) else {
        return Ok(inv);
    };
    i += 1;
    let Some((known, booleans)) = command_flags(command) else {
        return Err(format!("unknown subcommand {command:?}"));
    };
    // Like Go's flag package: flags stop at the first argument that is not one.
    while let Some(flag) = next_flag(argv, &mut i) {
        let (name, value) = match flag.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (flag, None),
        };
        if !known.contains(&name) {
            return Err(format!("{command}: flag provided but not defined: -{name}"));
        }
        let value = match value {
            Some(v) => v,
            None if booleans.contains(&name) => "true".to_string(),
            None => {
                i += 1;
                argv.get(i)
                    .cloned()
                    .ok_or_else(|| format!("{command}: flag needs an argument: -{name}"))?
            }
        };
        inv.flags.insert(name.to_string(), value);
        i += 1;
    }
    inv.command = Some(command.clone());
    inv.args = argv[i..].to_vec();
    Ok(inv)
}

pub(crate) fn parse_signal(s: &str) -> Result<u32, String> {
    if let Ok(n) = s.parse::<u32>() {
        return if n < 65 {
            Ok(n)
        } else {
            Err(format!("invalid signal {s:?}"))
        };
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        _ => return Err(format!("invalid signal {s:?}")),
    };
    Ok(n)
}

pub(crate) fn one_id(inv: &Invocation, extra: usize) -> Result<&str, String> {
    let command = inv.command.as_deref().unwrap_or_default();
    match inv.args.len() {
        n if n == 1 + extra => Ok(&inv.args[0]),
        0 => Err(format!("{command}: a container id is required")),
        _ => Err(format!(
            "{command}: wrong number of arguments {:?}",
            inv.args
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn globals_in_both_forms_then_subcommand() {
        let inv = parse(&args(
            "--root=/r --log /b/log.json -log-format=json --debug --platform ptrace \
             create --bundle /b --pid-file=/b/init.pid c1",
        ))
        .unwrap();
        assert_eq!(inv.globals["root"], "/r");
        assert_eq!(inv.globals["log"], "/b/log.json");
        assert_eq!(inv.globals["log-format"], "json");
        assert_eq!(inv.globals["debug"], "true");
        assert_eq!(inv.globals["platform"], "ptrace");
        assert_eq!(inv.command.as_deref(), Some("create"));
        assert_eq!(inv.flags["bundle"], "/b");
        assert_eq!(inv.flags["pid-file"], "/b/init.pid");
        assert_eq!(inv.args, ["c1"]);
    }

    #[test]
    fn an_unknown_flag_before_a_subcommand_is_a_boolean() {
        let inv = parse(&args("--root=/r --some-new-flag state c1")).unwrap();
        assert_eq!(inv.globals["some-new-flag"], "true");
        assert_eq!(inv.command.as_deref(), Some("state"));
    }

    #[test]
    fn boolean_subcommand_flags_take_no_value() {
        let inv = parse(&args("--root=/r kill --all c1 9")).unwrap();
        assert_eq!(inv.flags["all"], "true");
        assert_eq!(inv.args, ["c1", "9"]);
        let inv = parse(&args("--root=/r delete --force c1")).unwrap();
        assert_eq!(inv.flags["force"], "true");
        assert_eq!(inv.args, ["c1"]);
    }

    #[test]
    fn flags_stop_at_the_first_argument() {
        let inv = parse(&args("--root=/r kill c1 9 --all")).unwrap();
        assert!(!inv.flags.contains_key("all"));
        assert_eq!(inv.args, ["c1", "9", "--all"]);
    }

    #[test]
    fn unknown_subcommand_flags_and_subcommands_are_errors() {
        let err = parse(&args("--root=/r create --pidfile /x c1")).unwrap_err();
        assert!(err.contains("-pidfile"), "{err}");
        let err = parse(&args("--root=/r frobnicate c1")).unwrap_err();
        assert!(err.contains("frobnicate"), "{err}");
    }

    #[test]
    fn version_in_either_form() {
        assert!(parse(&args("--version")).unwrap().version);
        assert!(parse(&args("-version")).unwrap().version);
        assert!(parse(&args("--root=/r --version")).unwrap().version);
    }

    #[test]
    fn signals_by_number_or_name() {
        assert_eq!(parse_signal("15"), Ok(15));
        assert_eq!(parse_signal("SIGKILL"), Ok(9));
        assert_eq!(parse_signal("TERM"), Ok(15));
        assert!(parse_signal("99").is_err());
        assert!(parse_signal("NOPE").is_err());
    }
}
