//! A small command-line parser: `--name value`, `--name=value` and `--switch`, nothing else.
//! The sub-commands have a handful of options each; a dependency would be larger than this.

use std::collections::BTreeMap;

/// What a sub-command accepts: option names, and whether each takes a value.
pub struct OptionSpec {
    pub name: &'static str,
    pub takes_value: bool,
}

pub const fn value(name: &'static str) -> OptionSpec {
    OptionSpec {
        name,
        takes_value: true,
    }
}

pub const fn switch(name: &'static str) -> OptionSpec {
    OptionSpec {
        name,
        takes_value: false,
    }
}

/// The options given, by name.
#[derive(Debug, Default)]
pub struct Parsed {
    values: BTreeMap<String, String>,
}

impl Parsed {
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

/// Parses `args` (after the sub-command) against `spec`. The error is a sentence for the user.
pub fn parse(args: &[String], spec: &[OptionSpec]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(body) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(option) = spec.iter().find(|o| o.name == name) else {
            return Err(format!("unknown option --{name}"));
        };
        let value = match (option.takes_value, inline) {
            (true, Some(v)) => v,
            (true, None) => it
                .next()
                .cloned()
                .ok_or_else(|| format!("--{name} needs a value"))?,
            (false, None) => String::new(),
            (false, Some(_)) => return Err(format!("--{name} takes no value")),
        };
        if parsed.values.insert(name.to_string(), value).is_some() {
            return Err(format!("--{name} is given twice"));
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    const SPEC: &[OptionSpec] = &[value("bundle"), switch("json")];

    #[test]
    fn both_value_forms_and_switches() {
        let p = parse(&args(&["--bundle", "/b", "--json"]), SPEC).unwrap();
        assert_eq!(p.value("bundle"), Some("/b"));
        assert!(p.is_set("json"));
        let p = parse(&args(&["--bundle=/c"]), SPEC).unwrap();
        assert_eq!(p.value("bundle"), Some("/c"));
        assert!(!p.is_set("json"));
    }

    #[test]
    fn mistakes_are_named() {
        for (a, want) in [
            (&["--bundle"][..], "--bundle needs a value"),
            (&["--nope"], "unknown option --nope"),
            (&["--json=yes"], "--json takes no value"),
            (&["bundle"], "unexpected argument"),
            (&["--json", "--json"], "given twice"),
        ] {
            let err = parse(&args(a), SPEC).unwrap_err();
            assert!(err.contains(want), "{a:?}: {err}");
        }
    }
}
