//! `docs/openapi.yaml` against the code. Its schemas are generated from the types the daemon
//! decodes and encodes with (serde's renames, defaults, tags and `deny_unknown_fields` included),
//! and its paths must be the route table's, each with an `operationId` and a tag.
//!
//! After changing a type of the contract: `SEALD_UPDATE_OPENAPI=1 cargo test --lib openapi` rewrites
//! the generated part of the file; review the diff and commit it.

use super::*;
use crate::api::routes::ROUTES;
use schemars::{generate::SchemaSettings, JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

const SPEC: &str = "docs/openapi.yaml";
const MARKER: &str =
    "  # Generated from the contract types by `SEALD_UPDATE_OPENAPI=1 cargo test --lib openapi`. Do not edit below.";

/// The `{ "new_pin" }` body of `POST /v1/admin/token/pin` (read by hand: it is never echoed).
#[derive(Serialize, schemars::JsonSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
struct PinChangeBody {
    /// The new user PIN: 4 to 255 bytes, no control characters.
    #[schemars(length(min = 4, max = 255))]
    new_pin: String,
}

fn add<T: JsonSchema>(gen: &mut SchemaGenerator) {
    let _ = gen.subschema_for::<T>();
}

/// Every body the API reads or writes, as component schemas.
fn generated() -> Map<String, Value> {
    let mut gen = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let g = &mut gen;
    add::<ErrorReply>(g);
    add::<PinChangeBody>(g);
    add::<Alive>(g);
    add::<Readiness>(g);
    add::<ReadinessBare>(g);
    add::<Whoami>(g);
    add::<SignBody>(g);
    add::<SignReply>(g);
    add::<Batch<SignBody>>(g);
    add::<BatchReply<SignReply>>(g);
    add::<VerifyBody>(g);
    add::<crate::signing::Verdict>(g);
    add::<Batch<VerifyBody>>(g);
    add::<BatchReply<crate::signing::Verdict>>(g);
    add::<KeyList>(g);
    add::<KeyDetail>(g);
    add::<crate::audit::VerifyReport>(g);
    add::<CaCertificate>(g);
    add::<CaIssueBody>(g);
    add::<IssuedCertificate>(g);
    add::<SealList>(g);
    add::<ApplyBody>(g);
    add::<Applied>(g);
    add::<SealDetail>(g);
    add::<SealSummary>(g);
    add::<Policy>(g);
    add::<CsrReply>(g);
    add::<SignSesBody>(g);
    add::<SignSesReply>(g);
    add::<SignCmsBody>(g);
    add::<SignCmsReply>(g);
    add::<VerifySesBody>(g);
    add::<VerifySealBody>(g);
    add::<VerifyCmsBody>(g);
    add::<crate::seal::Judged>(g);
    add::<crate::seal::OfdVerdict>(g);
    add::<SealStatusReply>(g);
    add::<CertificateBody>(g);
    add::<GrantList>(g);
    add::<GrantBody>(g);
    add::<Grant>(g);
    add::<Withdrawn>(g);
    add::<crate::seal::TicketRequest>(g);
    add::<crate::seal::Ticket>(g);
    add::<UsageList>(g);
    add::<AuditRecords>(g);
    add::<TransitionBody>(g);
    add::<TransitionReply>(g);
    add::<FilingList>(g);
    add::<FilingExport>(g);
    add::<AckBody>(g);
    add::<crate::seal::Filing>(g);
    add::<AccountList>(g);
    add::<crate::seal::AccountSpec>(g);
    add::<crate::seal::AccountUpdate>(g);
    add::<AccountRecord>(g);
    add::<AwaitingApproval>(g);
    add::<ApplianceKeyList>(g);
    add::<VersionBody>(g);
    add::<crate::seal::PendingVersion>(g);
    add::<crate::seal::ActivatedVersion>(g);
    add::<RequestList>(g);
    add::<DualRequest>(g);
    add::<UnitList>(g);
    add::<crate::seal::UnitSpec>(g);
    add::<Unit>(g);
    let mut schemas: Map<String, Value> = gen.take_definitions(true).into_iter().collect();
    for schema in schemas.values_mut() {
        each_object(schema, &mut |m| {
            bound_u32(m);
            plain_enums(m);
        });
    }
    schemas
}

/// Calls `f` on every object in `v`, outermost first.
fn each_object(v: &mut Value, f: &mut impl FnMut(&mut Map<String, Value>)) {
    match v {
        Value::Object(m) => {
            f(m);
            m.values_mut().for_each(|v| each_object(v, f));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| each_object(v, f)),
        _ => {}
    }
}

/// A string enum whose variants carry doc comments comes out of schemars as a `oneOf` of `const`s.
/// That is valid, but client generators read it badly (one generated Python client accepted only
/// the first constant), so it becomes `enum`, with the variants' descriptions in its own.
fn plain_enums(m: &mut Map<String, Value>) {
    let consts: Option<Vec<(Value, Option<String>)>> = m.get("oneOf").and_then(Value::as_array).and_then(|variants| {
        variants
            .iter()
            .map(|variant| {
                let o = variant.as_object()?;
                let only_const = o.keys().all(|k| matches!(k.as_str(), "const" | "type" | "description"));
                if !only_const || o.get("type") != Some(&Value::from("string")) {
                    return None;
                }
                Some((o.get("const")?.clone(), o.get("description").and_then(Value::as_str).map(String::from)))
            })
            .collect()
    });
    if let Some(consts) = consts {
        let listed: Vec<String> =
            consts.iter().filter_map(|(c, d)| Some(format!("`{}`: {}", c.as_str()?, d.as_deref()?))).collect();
        let _ = m.remove("oneOf");
        let _ = m.insert("type".into(), Value::from("string"));
        let _ = m.insert("enum".into(), Value::Array(consts.into_iter().map(|(c, _)| c).collect()));
        if !listed.is_empty() {
            let head = m.get("description").and_then(Value::as_str).map(|d| format!("{d}\n\n")).unwrap_or_default();
            let _ = m.insert("description".into(), Value::from(format!("{head}{}", listed.join("\n"))));
        }
    }
}

/// `format: uint32` says what serde accepts, but validators and generators ignore formats: state the
/// bound as `maximum`.
fn bound_u32(m: &mut Map<String, Value>) {
    if m.get("format").and_then(Value::as_str) == Some("uint32") {
        let _ = m.insert("maximum".into(), Value::from(u32::MAX));
    }
}

/// The generated part of the spec, as YAML (JSON is YAML; indented under `components`).
fn generated_text() -> String {
    let json = serde_json::to_string_pretty(&Value::Object(generated())).expect("schemas serialise");
    let mut out = format!("{MARKER}\n  schemas:\n");
    for line in json.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn spec_text() -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SPEC)).expect("docs/openapi.yaml")
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(r) => r.parse::<f64>().map(Value::from).unwrap_or(Value::Null),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::from(s.clone()),
        Yaml::Boolean(b) => Value::from(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        other => panic!("a key that is not a string: {other:?}"),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Yaml::Null => Value::Null,
        other => panic!("unexpected YAML node {other:?}"),
    }
}

fn spec() -> Value {
    let docs = yaml_rust2::YamlLoader::load_from_str(&spec_text()).expect("docs/openapi.yaml is YAML");
    assert_eq!(docs.len(), 1, "one YAML document");
    yaml_to_json(&docs[0])
}

#[test]
fn the_schemas_are_the_contract_types() {
    let text = spec_text();
    let at = text.find(MARKER).expect("the marker line before the generated schemas");
    let want = generated_text();
    if std::env::var_os("SEALD_UPDATE_OPENAPI").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SPEC);
        std::fs::write(path, format!("{}{want}", &text[..at])).expect("write docs/openapi.yaml");
        return;
    }
    assert!(
        text[at..] == want,
        "docs/openapi.yaml's schemas differ from the contract types: run \
         `SEALD_UPDATE_OPENAPI=1 cargo test --lib openapi`, then describe any new field or route"
    );
}

fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        let _ = out.insert(r.clone());
                    }
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_route_is_in_the_spec_and_nothing_else() {
    let spec = spec();
    let paths = spec["paths"].as_object().expect("paths");
    let mut in_spec = BTreeSet::new();
    let mut operation_ids = BTreeSet::new();
    let tags: BTreeSet<&str> =
        spec["tags"].as_array().expect("tags").iter().filter_map(|t| t["name"].as_str()).collect();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            if method == "parameters" {
                continue;
            }
            let _ = in_spec.insert((method.to_uppercase(), path.clone()));
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(operation_ids.insert(id.to_string()), "operationId {id} twice");
            let op_tags = op["tags"].as_array().unwrap_or_else(|| panic!("{method} {path} has no tags"));
            assert!(!op_tags.is_empty(), "{method} {path} has no tag");
            for t in op_tags {
                assert!(tags.contains(t.as_str().unwrap_or_default()), "{method} {path}: tag {t} is not declared");
            }
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {path} has no responses"));
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path} has no success answer");
        }
    }
    let in_code: BTreeSet<(String, String)> =
        ROUTES.iter().map(|r| (r.method.as_str().to_string(), r.path.to_string())).collect();
    let missing: Vec<_> = in_code.difference(&in_spec).collect();
    let extra: Vec<_> = in_spec.difference(&in_code).collect();
    assert!(missing.is_empty(), "routes the spec does not describe: {missing:?}");
    assert!(extra.is_empty(), "the spec describes routes the daemon does not serve: {extra:?}");
}

#[test]
fn every_reference_resolves_and_every_schema_is_used() {
    let spec = spec();
    let mut all = BTreeSet::new();
    refs(&spec, &mut all);
    let resolve = |r: &str| {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} is not local"));
        spec.pointer(pointer).is_some()
    };
    for r in &all {
        assert!(resolve(r), "{r} resolves to nothing");
    }
    // Every generated schema is reachable from some operation (else it is a type the spec forgot).
    let mut used = BTreeSet::new();
    refs(&spec["paths"], &mut used);
    refs(&spec["components"]["responses"], &mut used);
    let mut todo: Vec<String> = used.iter().cloned().collect();
    while let Some(r) = todo.pop() {
        let mut more = BTreeSet::new();
        refs(spec.pointer(r.trim_start_matches('#')).unwrap_or(&Value::Null), &mut more);
        for m in more {
            if used.insert(m.clone()) {
                todo.push(m);
            }
        }
    }
    for name in generated().keys() {
        let r = format!("#/components/schemas/{name}");
        assert!(used.contains(&r), "schema {name} is used by no operation");
    }
}

/// Every error code the daemon can answer, read from the source: the code given to
/// `ApiError::new`/`ApiError::bad`, to `SealError::{NotFound, Conflict, Invalid}`, to the OFD reader's
/// `refused`, and the arms of
/// the `code`/`api_code` functions.
fn codes_in_source() -> BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).expect("src").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let constructors = ["ApiError::bad(", "NotFound(", "Conflict(", "Invalid(", "refused("];
    let mut codes = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("source");
        let mut at = 0;
        while let Some(open) = text[at..].find('"').map(|i| at + i) {
            let Some(close) = text[open + 1..].find('"').map(|i| open + 1 + i) else { break };
            at = close + 1;
            let word = &text[open + 1..close];
            let snake = word.starts_with(|c: char| c.is_ascii_lowercase())
                && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !snake {
                continue;
            }
            let mut start = open.saturating_sub(120);
            while !text.is_char_boundary(start) {
                start += 1;
            }
            let before: String = text[start..open].chars().filter(|c| !c.is_whitespace()).collect();
            let function = text[..open].rsplit_once("fn ").map(|(_, rest)| rest.split('(').next().unwrap_or_default());
            let constructed = constructors.iter().any(|c| before.ends_with(c))
                || before
                    .rsplit_once("ApiError::new(StatusCode::")
                    .is_some_and(|(_, status)| status.ends_with(',') && status.matches(',').count() == 1);
            let arm = before.ends_with("=>") && matches!(function, Some("code" | "api_code"));
            if constructed || arm {
                let _ = codes.insert(word.to_string());
            }
        }
    }
    codes
}

#[test]
fn every_error_code_is_documented_and_the_spec_names_only_real_ones() {
    let codes = codes_in_source();
    // The scan must see the codes it is known to see, or it is not reading the source.
    for known in ["bad_json", "unknown_identity", "seal_frozen", "unknown_seal", "token_busy", "body_timeout"] {
        assert!(codes.contains(known), "the scan missed {known}: {codes:?}");
    }
    let doc = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors.md"))
        .expect("docs/errors.md");
    let missing: Vec<_> = codes.iter().filter(|c| !doc.contains(&format!("| `{c}` |"))).collect();
    assert!(missing.is_empty(), "codes the daemon answers that docs/errors.md does not explain: {missing:?}");

    // The codes an operation's error answers name must be codes the daemon has.
    let spec = spec();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Some(responses) = op["responses"].as_object() else { continue };
            for (status, r) in responses {
                if r.get("$ref").is_none() {
                    continue;
                }
                let Some(text) = r["description"].as_str() else { continue };
                let mut plain = String::new();
                let mut depth = 0;
                for c in text.chars() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        c if depth == 0 => plain.push(c),
                        _ => {}
                    }
                }
                for named in plain.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                    assert!(codes.contains(named), "{method} {path} {status} names {named:?}, which is no error code");
                }
            }
        }
    }
}
