//! packaging/'s Kubernetes manifests validated against Kubernetes' own API schema: every YAML
//! document under packaging/ is one object, and its apiVersion and kind pick the JSON schema of
//! that kind, vendored in tests/fixtures/kubernetes-schema/ in its strict form (an unknown field
//! anywhere is an error, as `kubectl apply --validate=strict` makes it). A kind without a
//! vendored schema is a failure, so a new manifest cannot go unchecked. A plain scalar that
//! kubectl's YAML 1.1 reads otherwise than the YAML 1.2 parser here (`yes`, `off`, `0755`) is a
//! failure too, since the schema would judge another value than the API gets. What the schema
//! cannot say (names, quantities, the handler, how the files fit together) tests/packaging.rs
//! checks.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// The Kubernetes release whose schemas tests/fixtures/kubernetes-schema/ holds.
const KUBERNETES: &str = "v1.30.0";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every .yaml or .yml file under packaging/, relative to the repository, sorted.
fn manifest_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo("packaging"), &mut files);
    let root = repo("");
    let mut files: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(&root).unwrap().to_str().unwrap().to_string())
        .collect();
    files.sort();
    files
}

/// The documents of one YAML stream, as JSON values with their index in the stream; an empty
/// document (a stray `---`) is left out, as kubectl leaves it out.
fn documents(file: &str, text: &str) -> Result<Vec<(usize, Value)>, String> {
    let mut docs = Vec::new();
    for (index, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc)
            .map_err(|e| format!("{file}: document {index} does not parse: {e}"))?;
        if !value.is_null() {
            docs.push((index, value));
        }
    }
    Ok(docs)
}

/// The vendored schema's file name for an apiVersion and kind, as the schema set names them:
/// `<kind>-<version>.json` for the core group, `<kind>-<group's first label>-<version>.json`
/// for the others (apps/v1 DaemonSet: daemonset-apps-v1.json).
fn schema_file(api_version: &str, kind: &str) -> String {
    let kind = kind.to_ascii_lowercase();
    match api_version.split_once('/') {
        Some((group, version)) => {
            let group = group.split('.').next().unwrap_or(group);
            format!("{kind}-{group}-{version}.json")
        }
        None => format!("{kind}-{api_version}.json"),
    }
}

/// What is wrong with document `index` of `file`, one line per error, each naming the file, the
/// document, the kind and the JSON pointer of the offending value; empty when the API would take
/// it.
fn validate(file: &str, index: usize, object: &Value) -> Vec<String> {
    let field = |name: &str| object.get(name).and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
        return vec![format!(
            "{file}: document {index} has no string apiVersion and kind: it is not a Kubernetes object"
        )];
    };
    let at = format!("{file}: document {index} ({api_version} {kind})");
    let rel = format!(
        "tests/fixtures/kubernetes-schema/{KUBERNETES}/{}",
        schema_file(api_version, kind)
    );
    let Ok(text) = std::fs::read_to_string(repo(&rel)) else {
        return vec![format!(
            "{at}: no schema for this kind at {rel}: vendor it from the same schema set \
             (tests/fixtures/kubernetes-schema/README.md) before shipping the manifest"
        )];
    };
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    // The schemas are made from Kubernetes' OpenAPI v2 document, whose schema objects are JSON
    // Schema draft 4's.
    let validator =
        jsonschema::draft4::new(&schema).unwrap_or_else(|e| panic!("{rel} does not compile: {e}"));
    validator
        .iter_errors(object)
        .map(|e| {
            let pointer = e.instance_path().as_str();
            let pointer = if pointer.is_empty() { "/" } else { pointer };
            format!("{at} at {pointer}: {e}")
        })
        .collect()
}

/// Every error in every document of `file` (given as its text).
fn validate_text(file: &str, text: &str) -> Vec<String> {
    let mut errors = yaml11_differences(file, text);
    match documents(file, text) {
        Err(e) => errors.push(e),
        Ok(docs) if docs.is_empty() => errors.push(format!("{file}: no Kubernetes object in it")),
        Ok(docs) => errors.extend(docs.iter().flat_map(|(i, doc)| validate(file, *i, doc))),
    }
    errors
}

/// `line` without its comment: a `#` at its start or after a blank, outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return &line[..i],
            _ => {}
        }
        previous = c;
    }
    line
}

/// The plain scalars YAML 1.1 reads otherwise than YAML 1.2. kubectl and the API server read a
/// manifest as YAML 1.1 (go-yaml v2, under sigs.k8s.io/yaml): there a plain `yes`, `no`, `on`,
/// `off`, `y` or `n` is a boolean and `0755` an octal integer, where the YAML 1.2 parser of these
/// tests reads strings, so the schema would judge a value other than the one the API gets.
/// Block style (the manifests' style), line by line; a block scalar's lines are text, skipped.
fn yaml11_differences(file: &str, text: &str) -> Vec<String> {
    const BOOLEANS: [&str; 16] = [
        "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO", "off", "Off",
        "OFF",
    ];
    let mut errors = Vec::new();
    let mut block_scalar_of = None;
    for (n, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        if let Some(key_indent) = block_scalar_of {
            if line.trim().is_empty() || indent > key_indent {
                continue;
            }
            block_scalar_of = None;
        }
        let mut rest = strip_comment(line).trim();
        while let Some(item) = rest.strip_prefix("- ") {
            rest = item.trim_start();
        }
        let mut scalars = Vec::new();
        let value = match rest
            .split_once(": ")
            .or_else(|| rest.strip_suffix(':').map(|key| (key, "")))
        {
            Some((key, value)) => {
                scalars.push(key.trim());
                value.trim()
            }
            None => rest,
        };
        if value.starts_with('|') || value.starts_with('>') {
            block_scalar_of = Some(indent);
        } else if let Some(flow) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            scalars.extend(flow.split(',').map(str::trim));
        } else {
            scalars.push(value);
        }
        for s in scalars {
            let what = if BOOLEANS.contains(&s) {
                let truth = "yYoO".contains(&s[..1]) && !s.eq_ignore_ascii_case("off");
                format!("the boolean {truth}: write {truth} for a boolean")
            } else if s.len() > 1 && s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()) {
                match u64::from_str_radix(s, 8) {
                    Ok(v) => format!("the octal integer {v}: write {v} for that number"),
                    Err(_) => "no decimal number: write it without the leading 0".to_string(),
                }
            } else {
                continue;
            };
            errors.push(format!(
                "{file}:{}: kubectl (YAML 1.1) reads the plain `{s}` as {what}, or \"{s}\" \
                 for a string",
                n + 1
            ));
        }
    }
    errors
}

#[test]
fn every_manifest_in_packaging_is_valid_against_the_kubernetes_schema() {
    let files = manifest_files();
    // The two manifests the README installs; a new one is picked up by the walk.
    for expected in [
        "packaging/k8s/installer.yaml",
        "packaging/k8s/runtimeclass.yaml",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} in {files:?}"
        );
    }
    let mut kinds = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        let text = read(file);
        errors.extend(validate_text(file, &text));
        for (_, doc) in documents(file, &text).unwrap_or_default() {
            kinds.push((file.clone(), doc["apiVersion"].clone(), doc["kind"].clone()));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    for (file, api, kind) in [
        ("packaging/k8s/installer.yaml", "apps/v1", "DaemonSet"),
        (
            "packaging/k8s/runtimeclass.yaml",
            "node.k8s.io/v1",
            "RuntimeClass",
        ),
    ] {
        assert!(
            kinds.contains(&(file.to_string(), api.into(), kind.into())),
            "no {api} {kind} in {file}: {kinds:?}"
        );
    }
}

/// `file`'s text with `from` replaced by `to` exactly once, so that a mutation cannot silently
/// miss when the manifest changes.
fn mutated(file: &str, from: &str, to: &str) -> String {
    let text = read(file);
    assert_eq!(text.matches(from).count(), 1, "{from:?} in {file}");
    text.replacen(from, to, 1)
}

fn assert_rejected(errors: &[String], pointer: &str, words: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&format!(" at {pointer}: ")) && e.contains(words)),
        "no error at {pointer} saying {words:?} in {errors:#?}"
    );
}

#[test]
fn an_unknown_field_is_rejected_where_it_is() {
    // A typo in a container: the API server drops it with a warning (or, strict, refuses the
    // object); the image would be pulled with the default policy instead.
    let file = "packaging/k8s/installer.yaml";
    let text = mutated(
        file,
        "          image: runsc-guard-installer:0.1.0\n          command: [\"/opt/runsc-guard/installer.sh\", \"watch\"]\n",
        "          image: runsc-guard-installer:0.1.0\n          imagePullPolcy: Always\n          command: [\"/opt/runsc-guard/installer.sh\", \"watch\"]\n",
    );
    let errors = validate_text(file, &text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("packaging/k8s/installer.yaml: document 0 (apps/v1 DaemonSet) at "),
        "{}",
        errors[0]
    );
    assert_rejected(
        &errors,
        "/spec/template/spec/containers/0",
        "imagePullPolcy",
    );

    let file = "packaging/k8s/runtimeclass.yaml";
    let text = mutated(file, "  podFixed:\n", "  podfixed:\n");
    assert_rejected(&validate_text(file, &text), "/overhead", "podfixed");
}

#[test]
fn a_value_of_the_wrong_type_is_rejected() {
    let file = "packaging/k8s/installer.yaml";
    let text = mutated(file, "      hostPID: true\n", "      hostPID: \"yes\"\n");
    assert_rejected(
        &validate_text(file, &text),
        "/spec/template/spec/hostPID",
        "boolean",
    );
    // An environment variable's value must be a string: `value: 300` unquoted is refused.
    let text = mutated(
        file,
        "              value: \"300\"\n",
        "              value: 300\n",
    );
    assert_rejected(
        &validate_text(file, &text),
        "/spec/template/spec/containers/0/env/1/value",
        "string",
    );
    let file = "packaging/k8s/runtimeclass.yaml";
    let text = mutated(file, "handler: runsc\n", "handler: [runsc]\n");
    assert_rejected(&validate_text(file, &text), "/handler", "string");
}

#[test]
fn a_missing_required_field_is_rejected() {
    // Without a selector the API refuses a DaemonSet.
    let file = "packaging/k8s/installer.yaml";
    let text = mutated(
        file,
        "  selector:\n    matchLabels:\n      app.kubernetes.io/name: runsc-guard\n",
        "",
    );
    assert_rejected(&validate_text(file, &text), "/spec", "selector");
    // Nor a RuntimeClass without its handler.
    let file = "packaging/k8s/runtimeclass.yaml";
    let text = mutated(file, "handler: runsc\n", "");
    assert_rejected(&validate_text(file, &text), "/", "handler");
}

#[test]
fn a_kind_without_a_vendored_schema_fails() {
    let config_map =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: runsc-guard\ndata:\n  a: b\n";
    let text = format!(
        "{}---\n{config_map}",
        read("packaging/k8s/runtimeclass.yaml")
    );
    let errors = validate_text("packaging/k8s/extra.yaml", &text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("packaging/k8s/extra.yaml: document 1 (v1 ConfigMap): no schema"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("configmap-v1.json"), "{}", errors[0]);
    // An empty document (a doubled `---`) does not shift the index the error names.
    let errors = validate_text(
        "packaging/k8s/extra.yaml",
        &text.replace("---\n", "---\n---\n"),
    );
    assert!(
        errors[0].contains(": document 2 (v1 ConfigMap)"),
        "{errors:#?}"
    );
    // The kind's spelling is the schema's: the file name is case-blind, its kind enum is not.
    let file = "packaging/k8s/installer.yaml";
    let text = mutated(file, "kind: DaemonSet\n", "kind: Daemonset\n");
    assert_rejected(&validate_text(file, &text), "/kind", "DaemonSet");
    // An apiVersion the release does not serve has no schema either.
    let file = "packaging/k8s/runtimeclass.yaml";
    let text = mutated(
        file,
        "apiVersion: node.k8s.io/v1\n",
        "apiVersion: node.k8s.io/v1beta1\n",
    );
    let errors = validate_text(file, &text);
    assert!(
        errors[0].contains("runtimeclass-node-v1beta1.json"),
        "{errors:#?}"
    );
    // And a document that is no object at all is not skipped.
    let errors = validate_text("x.yaml", "just: a map\n");
    assert!(errors[0].contains("not a Kubernetes object"), "{errors:#?}");
    assert!(!validate_text("y.yaml", "# nothing\n").is_empty());
}

#[test]
fn a_plain_scalar_yaml_1_1_reads_otherwise_is_rejected() {
    let file = "packaging/k8s/installer.yaml";
    // The API would get the boolean true for the variable, and refuse it.
    let text = mutated(
        file,
        "              value: \"300\"\n",
        "              value: yes\n",
    );
    let errors = validate_text(file, &text);
    let line = text
        .lines()
        .position(|l| l.ends_with("value: yes"))
        .unwrap()
        + 1;
    assert_eq!(
        errors,
        [format!(
            "{file}:{line}: kubectl (YAML 1.1) reads the plain `yes` as the boolean true: write \
             true for a boolean, or \"yes\" for a string"
        )]
    );
    // A key and a flow sequence's item too; an octal mode; quoted, comments and a block
    // scalar's text are left alone.
    let text = "apiVersion: v1\nkind: X\nmetadata:\n  labels:\n    on: \"x\"\n  a: [\"no\", off]\n  \
                mode: 0644\n  b: \"yes\" # yes\n  c: 'n'\n  script: |\n    yes\n    no: 0755\n  d: N\n";
    let errors = yaml11_differences("z.yaml", text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    for (error, (line, word, what)) in errors.iter().zip([
        (5, "on", "the boolean true"),
        (6, "off", "the boolean false"),
        (7, "0644", "the octal integer 420"),
        (13, "N", "the boolean false"),
    ]) {
        assert!(
            error.starts_with(&format!(
                "z.yaml:{line}: kubectl (YAML 1.1) reads the plain `{word}` as {what}"
            )),
            "{error}"
        );
    }
}

#[test]
fn schema_files_are_named_as_the_schema_set_names_them() {
    assert_eq!(
        schema_file("apps/v1", "DaemonSet"),
        "daemonset-apps-v1.json"
    );
    assert_eq!(
        schema_file("node.k8s.io/v1", "RuntimeClass"),
        "runtimeclass-node-v1.json"
    );
    assert_eq!(
        schema_file("v1", "ServiceAccount"),
        "serviceaccount-v1.json"
    );
    // Every vendored schema is named after the kind it describes, and is the strict form.
    let dir = repo(&format!("tests/fixtures/kubernetes-schema/{KUBERNETES}"));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let schema: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let kind = schema["properties"]["kind"]["enum"][0].as_str().unwrap();
            let api = schema["properties"]["apiVersion"]["enum"][0]
                .as_str()
                .unwrap();
            assert_eq!(
                path.file_name().unwrap().to_str().unwrap(),
                schema_file(api, kind),
                "{}",
                path.display()
            );
            // Strict: an object schema allows no field it does not list.
            assert_eq!(
                schema["additionalProperties"],
                Value::Bool(false),
                "{}",
                path.display()
            );
        }
    }
}
