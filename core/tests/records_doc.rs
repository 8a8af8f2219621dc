//! `core/RECORDS.md` against the code, so that neither can drift from the other.
//!
//! - The kind table: one row per `RecordKind::ALL`, in order, with its number, `name()` and
//!   `payload_version()`, and a `### Kind N: name` section for each, whose `Payload:` line names
//!   the same version (and the encoders write it).
//! - Every postcard payload type, field by field: `serde-reflection` traces the formats of the
//!   payload types from sample values (built with the code's own constructors, since their
//!   `Deserialize` validates) and every enum's variants from its `Deserialize`. Each traced
//!   struct's fields (names, order, types) and each enum's variants (names, index order,
//!   contents) must equal the document's tables, and every table must be a traced type; the
//!   value types of section 2 are checked against their traced encodings.
//! - The audit record, which is hand-written rather than postcard: the chain prefix's offsets,
//!   the hash over it, the event's fields (the names traced from `AuditEvent`, in the encoding
//!   order) and the code tables of its enums, by decoding events per the document.
//! - Version 1 of the outcome record (a private type that cannot be traced): bytes laid out as
//!   the document says are read by `records::outcome::decode`.
//! - Every record of the golden fixture (`tests/golden/data-v1/`, every kind): decoded by this
//!   document's rules alone, with no bytes left over, it must equal what the code decodes; its
//!   key's namespace, its secondary index entries and a chunk's digest must be as documented.
//!   The registration example's bytes are the code's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on any unexpected error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_reflection::{
    ContainerFormat, Format, Registry, Samples, Tracer, TracerConfig, Value, VariantFormat,
};
use sha2::{Digest, Sha256};
use spine_core::audit::chain::{AuditChain, ChainRecord, RECORD_PREFIX_SIZE};
use spine_core::audit::event::{AccessAlert, AuditAction, AuditEvent, AuditOutcome};
use spine_core::engine::EngineConfig;
use spine_core::eps::{
    EpsActionKind, LineItem, Prescription, PrescriptionId, PrescriptionStatus, StatusChange,
};
use spine_core::ers::referral;
use spine_core::ers::slot::{book_slot, release_slot};
use spine_core::ers::{
    ClinicType, Priority, Service, ServiceId, Slot, SlotId, SlotStart, Specialty, Ubrn,
};
use spine_core::gp2gp::{self, ChunkOutcome, NewTransfer, Sha256Hash, Transfer, TransferId};
use spine_core::pds::patient::{
    Address, AddressUse, ContactPoint, ContactSystem, ContactUse, Death, DeathNotificationStatus,
    Gender, HumanName, NameUse, Period,
};
use spine_core::pds::synthetic::patient_at;
use spine_core::pds::values::{Date, OdsCode, Postcode};
use spine_core::request::{ErrorCode, Refusal};
use spine_core::scr::record::{
    Author, ScrContent, ScrEntryInput, ScrPermission, SummaryCareRecord,
};
use spine_core::shard::alerts::{self, AlertRecord};
use spine_core::shard::ers::{ReferralRecord, ServiceRecord};
use spine_core::shard::meta::ShardMeta;
use spine_core::shard::outcomes::{OutcomeRecord, Written};
use spine_core::shard::record_layout::{self, RecordKind, ShardIndexes};
use spine_core::shard::records;
use spine_core::shard::registrations::PreviousPractice;
use spine_core::{NhsNumber, Patient};
use spine_domain::codes::CodeList;
use spine_storage::Log;
use uuid::Uuid;

const DOC: &str = include_str!("../RECORDS.md");
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/data-v1");

// ---------------------------------------------------------------------------------------------
// The document: sections, tables, type expressions.

/// One heading and the lines under it, up to the next heading (code blocks kept, their lines
/// never read as headings).
struct Section {
    level: usize,
    title: String,
    lines: Vec<String>,
}

fn sections(doc: &str) -> Vec<Section> {
    let mut sections = vec![Section {
        level: 0,
        title: String::new(),
        lines: Vec::new(),
    }];
    let mut in_code = false;
    for line in doc.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if !in_code && level > 0 && line[level..].starts_with(' ') {
            sections.push(Section {
                level,
                title: line[level + 1..].trim().to_owned(),
                lines: Vec::new(),
            });
        } else {
            sections.last_mut().unwrap().lines.push(line.to_owned());
        }
    }
    sections
}

/// A table: its heading line and its rows' cells.
struct Table {
    heading: String,
    rows: Vec<Vec<String>>,
}

fn cells(line: &str) -> Vec<String> {
    assert!(!line.contains("\\|"), "no escaped pipes in tables: {line}");
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner
        .split('|')
        .map(|cell| cell.trim().to_owned())
        .collect()
}

fn tables(lines: &[String]) -> Vec<Table> {
    let mut tables = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        if lines[index].starts_with('|') {
            let heading = lines[index].trim().to_owned();
            let separator = lines.get(index + 1).expect("a table has a separator line");
            assert!(
                separator.starts_with("| ---"),
                "table {heading}: separator {separator}"
            );
            let width = cells(&heading).len();
            let mut rows = Vec::new();
            index += 2;
            while index < lines.len() && lines[index].starts_with('|') {
                let row = cells(&lines[index]);
                assert_eq!(row.len(), width, "row {} of table {heading}", lines[index]);
                rows.push(row);
                index += 1;
            }
            tables.push(Table { heading, rows });
        } else {
            index += 1;
        }
    }
    tables
}

/// The texts between backticks.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The text of a cell that is one code span.
fn code(cell: &str) -> &str {
    let spans = code_spans(cell);
    assert!(
        spans.len() == 1 && cell.starts_with('`') && cell.ends_with('`'),
        "{cell:?} should be one code span"
    );
    spans[0]
}

/// A type as the tables write it.
#[derive(Clone, Debug, PartialEq)]
enum Ty {
    /// A named type, with its arguments (`Option<Date>`, `Patient`).
    Named(String, Vec<Ty>),
    Tuple(Vec<Ty>),
    Array(Box<Ty>, usize),
}

/// An enum variant as the tables write it.
#[derive(Clone, Debug, PartialEq)]
enum DocVariant {
    Unit,
    NewType(Ty),
    Tuple(Vec<Ty>),
    Struct(Vec<(String, Ty)>),
}

struct Tokens {
    tokens: Vec<String>,
    at: usize,
}

impl Tokens {
    fn new(text: &str) -> Self {
        let mut tokens = Vec::new();
        let mut word = String::new();
        for c in text.chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
        if !word.is_empty() {
            tokens.push(word);
        }
        Self { tokens, at: 0 }
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> String {
        let token = self.tokens.get(self.at).cloned().expect("more tokens");
        self.at += 1;
        token
    }

    fn expect(&mut self, token: &str) {
        let found = self.next();
        assert_eq!(found, token, "in {:?}", self.tokens);
    }

    fn done(&self) -> bool {
        self.at == self.tokens.len()
    }

    fn list<T>(&mut self, close: &str, mut item: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let mut items = vec![item(self)];
        while self.peek() == Some(",") {
            self.next();
            items.push(item(self));
        }
        self.expect(close);
        items
    }

    fn ty(&mut self) -> Ty {
        match self.next().as_str() {
            "(" => Ty::Tuple(self.list(")", Self::ty)),
            "[" => {
                let element = self.ty();
                self.expect(";");
                let count = self.next().parse().expect("an array length");
                self.expect("]");
                Ty::Array(Box::new(element), count)
            }
            name => {
                let arguments = if self.peek() == Some("<") {
                    self.next();
                    self.list(">", Self::ty)
                } else {
                    Vec::new()
                };
                Ty::Named(name.to_owned(), arguments)
            }
        }
    }

    fn field(&mut self) -> (String, Ty) {
        let name = self.next();
        self.expect(":");
        (name, self.ty())
    }
}

fn parse_ty(text: &str) -> Ty {
    let mut tokens = Tokens::new(text);
    let ty = tokens.ty();
    assert!(tokens.done(), "{text:?} is one type");
    ty
}

fn parse_variant(text: &str) -> (String, DocVariant) {
    let mut tokens = Tokens::new(text);
    let name = tokens.next();
    let variant = match tokens.peek() {
        None => DocVariant::Unit,
        Some("(") => {
            tokens.next();
            let mut types = tokens.list(")", Tokens::ty);
            if types.len() == 1 {
                DocVariant::NewType(types.remove(0))
            } else {
                DocVariant::Tuple(types)
            }
        }
        Some("{") => {
            tokens.next();
            DocVariant::Struct(tokens.list("}", Tokens::field))
        }
        Some(other) => panic!("variant {text:?}: unexpected {other:?}"),
    };
    assert!(tokens.done(), "{text:?} is one variant");
    (name, variant)
}

const STRUCT_HEADING: &str = "| field | type | meaning |";
const ENUM_HEADING: &str = "| index | variant | meaning |";
const CODE_LIST_HEADING: &str = "| number | value | meaning |";
const KIND_HEADING: &str = "| kind | name | payload version | key | secondary index |";
const VALUE_TYPES_HEADING: &str = "| type | encoded as | rule |";
const INDEX_HEADING: &str = "| index | constant | kind | entry while | key bytes |";

/// The document's postcard layouts: value types, structs and enums by name.
struct Model {
    aliases: BTreeMap<String, Ty>,
    structs: BTreeMap<String, Vec<(String, Ty)>>,
    enums: BTreeMap<String, Vec<(String, DocVariant)>>,
    /// Code lists, stored as a value's number (a `u32`, so also an alias): number → value.
    code_lists: BTreeMap<String, Vec<(u32, String)>>,
}

/// Types the document may use that no trace can check: the version 1 outcome's private type.
const UNTRACEABLE: &[&str] = &["PatientOutcomeRecord"];

impl Model {
    fn read(sections: &[Section]) -> Self {
        let mut model = Self {
            aliases: BTreeMap::new(),
            structs: BTreeMap::new(),
            enums: BTreeMap::new(),
            code_lists: BTreeMap::new(),
        };
        let all_tables = sections.iter().flat_map(|section| tables(&section.lines));
        for table in all_tables.filter(|table| table.heading == VALUE_TYPES_HEADING) {
            for row in &table.rows {
                let name = code(&row[0]).to_owned();
                let encoded = parse_ty(code(&row[1]));
                assert!(
                    model.aliases.insert(name.clone(), encoded).is_none(),
                    "value type {name} twice"
                );
            }
        }
        for section in sections.iter().filter(|section| section.level == 4) {
            let name = section.title.clone();
            for table in tables(&section.lines) {
                if table.heading == STRUCT_HEADING {
                    let fields = table
                        .rows
                        .iter()
                        .map(|row| (code(&row[0]).to_owned(), parse_ty(code(&row[1]))))
                        .collect();
                    assert!(
                        model.structs.insert(name.clone(), fields).is_none(),
                        "{name} twice"
                    );
                } else if table.heading == CODE_LIST_HEADING {
                    let values = table
                        .rows
                        .iter()
                        .map(|row| (row[0].parse().unwrap(), code(&row[1]).to_owned()))
                        .collect();
                    let u32 = Ty::Named("u32".into(), Vec::new());
                    assert!(
                        model.aliases.insert(name.clone(), u32).is_none()
                            && model.code_lists.insert(name.clone(), values).is_none(),
                        "{name} twice"
                    );
                } else if table.heading == ENUM_HEADING {
                    let variants = table
                        .rows
                        .iter()
                        .enumerate()
                        .map(|(position, row)| {
                            assert_eq!(row[0], position.to_string(), "{name}: indexes from 0");
                            parse_variant(code(&row[1]))
                        })
                        .collect();
                    assert!(
                        model.enums.insert(name.clone(), variants).is_none(),
                        "{name} twice"
                    );
                }
            }
        }
        model
    }

    // ---- Agreement with the traced formats.

    /// Whether the document's `ty` is the traced `format`; what differs if not.
    fn check(&self, registry: &Registry, ty: &Ty, format: &Format, at: &str) -> Vec<String> {
        match (ty, format) {
            (Ty::Tuple(types), Format::Tuple(formats)) if types.len() == formats.len() => types
                .iter()
                .zip(formats)
                .flat_map(|(ty, format)| self.check(registry, ty, format, at))
                .collect(),
            (Ty::Array(ty, count), Format::TupleArray { content, size }) if count == size => {
                self.check(registry, ty, content, at)
            }
            (Ty::Named(name, arguments), _) => {
                self.check_named(registry, name, arguments, format, at)
            }
            _ => vec![format!(
                "{at}: the document has {ty:?}, the code {format:?}"
            )],
        }
    }

    fn check_named(
        &self,
        registry: &Registry,
        name: &str,
        arguments: &[Ty],
        format: &Format,
        at: &str,
    ) -> Vec<String> {
        match (name, arguments, format) {
            ("u8", [], Format::U8)
            | ("u16", [], Format::U16)
            | ("u32", [], Format::U32)
            | ("u64", [], Format::U64)
            | ("i64", [], Format::I64)
            | ("bool", [], Format::Bool)
            | ("String", [], Format::Str)
            | ("bytes", [], Format::Bytes) => Vec::new(),
            ("Option", [inner], Format::Option(format)) | ("Vec", [inner], Format::Seq(format)) => {
                self.check(registry, inner, format, at)
            }
            ("Result", [ok, err], Format::TypeName(traced)) if traced == "Result" => {
                self.check_result(registry, ok, err, at)
            }
            ("Range", [bound], Format::TypeName(traced)) if traced == "Range" => {
                match registry.get("Range") {
                    Some(ContainerFormat::Struct(fields)) => {
                        let both = [
                            ("start".to_owned(), bound.clone()),
                            ("end".to_owned(), bound.clone()),
                        ];
                        self.check_fields(registry, &both, fields, at)
                    }
                    other => vec![format!("{at}: Range is {other:?}")],
                }
            }
            (alias, [], _) if self.aliases.contains_key(alias) => {
                let encoded = &self.aliases[alias];
                match format {
                    // A newtype struct is traced by name: compare its content.
                    Format::TypeName(traced) if traced == alias => match registry.get(traced) {
                        Some(ContainerFormat::NewTypeStruct(inner)) => {
                            self.check(registry, encoded, inner, at)
                        }
                        other => vec![format!("{at}: {alias} is {other:?}")],
                    },
                    _ => self.check(registry, encoded, format, at),
                }
            }
            (container, [], Format::TypeName(traced))
                if traced == container
                    && (self.structs.contains_key(container)
                        || self.enums.contains_key(container)) =>
            {
                Vec::new()
            }
            _ => vec![format!(
                "{at}: the document has {name}<{arguments:?}>, the code {format:?}"
            )],
        }
    }

    /// `Result<ok, err>` against the traced `Result`: `Ok(ok)` then `Err(err)`.
    fn check_result(&self, registry: &Registry, ok: &Ty, err: &Ty, at: &str) -> Vec<String> {
        let Some(ContainerFormat::Enum(variants)) = registry.get("Result") else {
            return vec![format!("{at}: Result is not an enum")];
        };
        let documented = [
            ("Ok".to_owned(), DocVariant::NewType(ok.clone())),
            ("Err".to_owned(), DocVariant::NewType(err.clone())),
        ];
        self.check_variants(registry, "Result", &documented, variants)
    }

    fn check_variant(
        &self,
        registry: &Registry,
        doc: &DocVariant,
        traced: &VariantFormat,
        at: &str,
    ) -> Vec<String> {
        match (doc, traced) {
            (DocVariant::Unit, VariantFormat::Unit) => Vec::new(),
            (DocVariant::NewType(ty), VariantFormat::NewType(format)) => {
                self.check(registry, ty, format, at)
            }
            (DocVariant::Tuple(types), VariantFormat::Tuple(formats))
                if types.len() == formats.len() =>
            {
                types
                    .iter()
                    .zip(formats)
                    .flat_map(|(ty, format)| self.check(registry, ty, format, at))
                    .collect()
            }
            (DocVariant::Struct(fields), VariantFormat::Struct(traced)) => {
                self.check_fields(registry, fields, traced, at)
            }
            _ => vec![format!(
                "{at}: the document has {doc:?}, the code {traced:?}"
            )],
        }
    }

    fn check_fields(
        &self,
        registry: &Registry,
        fields: &[(String, Ty)],
        traced: &[serde_reflection::Named<Format>],
        at: &str,
    ) -> Vec<String> {
        let documented: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
        let code: Vec<&str> = traced.iter().map(|field| field.name.as_str()).collect();
        if documented != code {
            return vec![format!(
                "{at}: the document's fields are {documented:?}, the code's {code:?}"
            )];
        }
        fields
            .iter()
            .zip(traced)
            .flat_map(|((name, ty), field)| {
                self.check(registry, ty, &field.value, &format!("{at}.{name}"))
            })
            .collect()
    }

    /// An enum's variants, in index order, against the document's.
    fn check_variants(
        &self,
        registry: &Registry,
        name: &str,
        documented: &[(String, DocVariant)],
        variants: &BTreeMap<u32, serde_reflection::Named<VariantFormat>>,
    ) -> Vec<String> {
        let code: Vec<(u32, &str)> = variants
            .iter()
            .map(|(index, variant)| (*index, variant.name.as_str()))
            .collect();
        let doc: Vec<(u32, &str)> = (0..)
            .zip(documented.iter().map(|(name, _)| name.as_str()))
            .collect();
        if code != doc {
            return vec![format!(
                "enum {name}: the document's variants are {doc:?}, the code's {code:?}"
            )];
        }
        variants
            .values()
            .zip(documented)
            .flat_map(|(variant, (_, doc))| {
                let at = format!("{name}::{}", variant.name);
                self.check_variant(registry, doc, &variant.value, &at)
            })
            .collect()
    }

    /// Every traced container against the document's table of it, and every table against a
    /// traced container.
    fn check_registry(&self, registry: &Registry) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, container) in registry {
            match container {
                // Built-in generics: checked where they are used.
                _ if name == "Result" || name == "Range" => {}
                ContainerFormat::Struct(fields) => match self.structs.get(name) {
                    Some(documented) => {
                        problems.extend(self.check_fields(registry, documented, fields, name));
                    }
                    None => problems.push(format!("struct {name} has no table")),
                },
                ContainerFormat::Enum(variants) => match self.enums.get(name) {
                    Some(documented) => {
                        problems.extend(self.check_variants(registry, name, documented, variants));
                    }
                    None => problems.push(format!("enum {name} has no table")),
                },
                ContainerFormat::NewTypeStruct(inner) => match self.aliases.get(name) {
                    Some(encoded) => problems.extend(self.check(registry, encoded, inner, name)),
                    None => problems.push(format!("newtype {name} is not a value type")),
                },
                other => problems.push(format!("{name}: unexpected {other:?}")),
            }
        }
        for name in self.structs.keys().chain(self.enums.keys()) {
            if !registry.contains_key(name) && !UNTRACEABLE.contains(&name.as_str()) {
                problems.push(format!("{name} has a table but no payload holds it"));
            }
        }
        problems
    }

    // ---- Decoding by the document alone.

    fn decode(&self, ty: &Ty, bytes: &mut Bytes<'_>) -> Result<Value, String> {
        match ty {
            Ty::Tuple(types) => self.decode_all(types.iter(), bytes),
            Ty::Array(ty, count) => self.decode_all(std::iter::repeat_n(&**ty, *count), bytes),
            Ty::Named(name, arguments) => match (name.as_str(), arguments.as_slice()) {
                ("Option", [inner]) => match bytes.take(1)?[0] {
                    0 => Ok(Value::Option(None)),
                    1 => Ok(Value::Option(Some(Box::new(self.decode(inner, bytes)?)))),
                    other => Err(format!("option tag {other}")),
                },
                ("Vec", [inner]) => {
                    let count = bytes.length()?;
                    self.decode_all(std::iter::repeat_n(inner, count), bytes)
                }
                ("Result", [ok, err]) => match bytes.varint(32)? {
                    0 => Ok(Value::Variant(0, Box::new(self.decode(ok, bytes)?))),
                    1 => Ok(Value::Variant(1, Box::new(self.decode(err, bytes)?))),
                    other => Err(format!("Result variant {other}")),
                },
                ("Range", [bound]) => self.decode_all([bound, bound].into_iter(), bytes),
                (name, []) if self.aliases.contains_key(name) => {
                    self.decode(&self.aliases[name], bytes)
                }
                (name, []) if self.structs.contains_key(name) => {
                    self.decode_all(self.structs[name].iter().map(|(_, ty)| ty), bytes)
                }
                (name, []) if self.enums.contains_key(name) => self.decode_enum(name, bytes),
                (name, []) => decode_primitive(name, bytes),
                _ => Err(format!("the document does not define {ty:?}")),
            },
        }
    }

    /// Values one after the other, as a tuple, struct or sequence is traced.
    fn decode_all<'t>(
        &self,
        types: impl Iterator<Item = &'t Ty>,
        bytes: &mut Bytes<'_>,
    ) -> Result<Value, String> {
        let values = types.map(|ty| self.decode(ty, bytes));
        Ok(Value::Seq(values.collect::<Result<_, _>>()?))
    }

    fn decode_enum(&self, name: &str, bytes: &mut Bytes<'_>) -> Result<Value, String> {
        let index = bytes.varint(32)?;
        let (_, variant) = self.enums[name]
            .get(index as usize)
            .ok_or_else(|| format!("{name} has no variant {index}"))?;
        let content = match variant {
            DocVariant::Unit => Value::Unit,
            DocVariant::NewType(ty) => self.decode(ty, bytes)?,
            DocVariant::Tuple(types) => self.decode_all(types.iter(), bytes)?,
            DocVariant::Struct(fields) => {
                self.decode_all(fields.iter().map(|(_, ty)| ty), bytes)?
            }
        };
        Ok(Value::Variant(index as u32, Box::new(content)))
    }

    /// The document's type of each value in `value` (decoded as `ty`), depth first: value
    /// types, enums and primitives by name.
    fn leaf_types(&self, ty: &Ty, value: &Value, out: &mut Vec<String>) {
        let each = |types: &mut dyn Iterator<Item = &Ty>, out: &mut Vec<String>| {
            let Value::Seq(values) = value else {
                panic!("{ty:?} decodes to a sequence");
            };
            for (ty, value) in types.zip(values) {
                self.leaf_types(ty, value, out);
            }
        };
        match ty {
            Ty::Tuple(types) => each(&mut types.iter(), out),
            Ty::Array(ty, count) => each(&mut std::iter::repeat_n(&**ty, *count), out),
            Ty::Named(name, arguments) => match (name.as_str(), arguments.as_slice(), value) {
                ("Option", [inner], Value::Option(Some(value))) => {
                    self.leaf_types(inner, value, out);
                }
                ("Option", [_], _) => {}
                ("Vec", [inner], Value::Seq(values)) => {
                    each(&mut std::iter::repeat_n(inner, values.len()), out)
                }
                ("Result", [ok, err], Value::Variant(index, value)) => {
                    self.leaf_types(if *index == 0 { ok } else { err }, value, out);
                }
                ("Range", [bound], _) => each(&mut [bound, bound].into_iter(), out),
                (name, [], _) if self.structs.contains_key(name) => {
                    each(&mut self.structs[name].iter().map(|(_, ty)| ty), out);
                }
                (name, [], _) => out.push(name.to_owned()),
                _ => panic!("{ty:?} and {value:?}"),
            },
        }
    }

    /// `payload` after its version byte, decoded as `root`, with nothing left over.
    fn decode_payload(&self, root: &str, body: &[u8]) -> Result<Value, String> {
        let mut bytes = Bytes { bytes: body };
        let value = self.decode(&Ty::Named(root.to_owned(), Vec::new()), &mut bytes)?;
        if !bytes.bytes.is_empty() {
            return Err(format!("{} bytes left over", bytes.bytes.len()));
        }
        Ok(value)
    }
}

/// A value of one of the encoding rules' primitive types.
fn decode_primitive(name: &str, bytes: &mut Bytes<'_>) -> Result<Value, String> {
    Ok(match name {
        "u8" => Value::U8(bytes.take(1)?[0]),
        "u16" => Value::U16(bytes.varint(16)? as u16),
        "u32" => Value::U32(bytes.varint(32)? as u32),
        "u64" => Value::U64(bytes.varint(64)?),
        "i64" => {
            let zigzag = bytes.varint(64)?;
            Value::I64((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64))
        }
        "bool" => match bytes.take(1)?[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            other => return Err(format!("bool {other}")),
        },
        "String" => {
            let length = bytes.length()?;
            let text = std::str::from_utf8(bytes.take(length)?).map_err(|e| e.to_string())?;
            Value::Str(text.to_owned())
        }
        "bytes" => {
            let length = bytes.length()?;
            Value::Bytes(bytes.take(length)?.to_vec())
        }
        other => return Err(format!("the document does not define {other}")),
    })
}

/// Bytes being read.
struct Bytes<'a> {
    bytes: &'a [u8],
}

impl<'a> Bytes<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < count {
            return Err(format!("{count} bytes wanted, {} left", self.bytes.len()));
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    /// An unsigned LEB128 varint of at most `bits` bits.
    fn varint(&mut self, bits: u32) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                if bits < 64 && value >> bits != 0 {
                    return Err(format!("varint {value} overflows {bits} bits"));
                }
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn length(&mut self) -> Result<usize, String> {
        Ok(self.varint(64)? as usize)
    }

    fn u64_le(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}

/// The whole document, read once.
struct Doc {
    sections: Vec<Section>,
    model: Model,
}

impl Doc {
    fn read() -> Self {
        let sections = sections(DOC);
        let model = Model::read(&sections);
        Self { sections, model }
    }

    fn section(&self, title: &str) -> &Section {
        let mut found = self
            .sections
            .iter()
            .filter(|section| section.title == title);
        let section = found
            .next()
            .unwrap_or_else(|| panic!("no section {title:?}"));
        assert!(found.next().is_none(), "section {title:?} twice");
        section
    }

    fn table(&self, heading: &str) -> Table {
        let mut found: Vec<Table> = self
            .sections
            .iter()
            .flat_map(|section| tables(&section.lines))
            .filter(|table| table.heading == heading)
            .collect();
        assert_eq!(found.len(), 1, "one table {heading}");
        found.remove(0)
    }

    fn section_table(&self, title: &str, heading: &str) -> Table {
        let mut found: Vec<Table> = tables(&self.section(title).lines)
            .into_iter()
            .filter(|table| table.heading == heading)
            .collect();
        assert_eq!(found.len(), 1, "section {title}: one table {heading}");
        found.remove(0)
    }

    /// A kind section's `Payload:` line.
    fn payload_line(&self, kind: RecordKind) -> &str {
        let title = format!("Kind {}: {}", kind as u8, kind.name());
        let section = self.section(&title);
        let lines: Vec<&String> = section
            .lines
            .iter()
            .filter(|line| line.starts_with("Payload:"))
            .collect();
        assert_eq!(lines.len(), 1, "{title}: one Payload: line");
        lines[0]
    }

    /// The postcard type a kind's payload holds after its version byte.
    fn root(&self, kind: RecordKind) -> String {
        let line = self.payload_line(kind);
        let after = line
            .split("then postcard ")
            .nth(1)
            .unwrap_or_else(|| panic!("{line}: no postcard type"));
        code_spans(after)[0].to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Samples of every payload, built as the code builds them.

fn tracer_config() -> TracerConfig {
    // A `Uuid` reads 16 bytes (as postcard, not human-readable): the deserialisation traces of
    // enums holding one need 16 sample bytes.
    TracerConfig::default()
        .is_human_readable(false)
        .default_borrowed_bytes_value(&[0x11; 16])
        .default_byte_buf_value(vec![0x11; 16])
}

fn value_of<T: Serialize + ?Sized>(value: &T) -> Value {
    Tracer::new(tracer_config())
        .trace_value(&mut Samples::new(), value)
        .unwrap()
        .1
}

fn nhs(text: &str) -> NhsNumber {
    text.parse().unwrap()
}

fn ods(text: &str) -> OdsCode {
    text.parse().unwrap()
}

fn date(text: &str) -> Date {
    text.parse().unwrap()
}

/// A patient with every field present: each `Option` some, each list not empty.
fn patient() -> Patient {
    let mut patient = patient_at(7, 0, nhs("9000000009"));
    let period = Period {
        start: Some(date("2020-01-01")),
        end: Some(date("2021-01-01")),
    };
    patient.names = vec![HumanName {
        name_use: NameUse::Usual,
        prefix: Some("Mrs".into()),
        given: vec!["Jane".into()],
        family: "Smith".into(),
        suffix: Some("MBE".into()),
        period,
    }];
    patient.birth_date = Some(date("1980-10-22"));
    patient.deceased = Some(Death {
        date: date("2024-01-02"),
        time_s: Some(3_600),
        notification: DeathNotificationStatus::Formal,
    });
    patient.addresses = vec![Address {
        address_use: AddressUse::Home,
        lines: vec!["1 Trevelyan Square".into()],
        postcode: Some("LS1 6AE".parse().unwrap()),
        period,
    }];
    patient.telecom = vec![ContactPoint {
        system: ContactSystem::Phone,
        value: "01632960587".into(),
        contact_use: ContactUse::Home,
        period,
    }];
    patient.general_practitioner = Some(ods("Y12345"));
    patient.validate().unwrap();
    patient
}

fn scr() -> SummaryCareRecord {
    let author = Author {
        user: Uuid::from_u128(1),
        organisation: ods("Y90001"),
        at_ms: 10,
    };
    let entry = |text: &str| ScrEntryInput {
        code: Some(91_936_005),
        text: text.into(),
    };
    let content = ScrContent {
        allergies: vec![entry("Penicillin")],
        adverse_reactions: vec![entry("Rash")],
        acute_medications: vec![entry("Amoxicillin")],
        repeat_medications: vec![entry("Ramipril")],
    };
    SummaryCareRecord::empty(nhs("9000000009"), &author).with_content(&content, &author, 0)
}

fn prescription() -> Prescription {
    let organisation = ods("A99968");
    let item = |dispensed| LineItem {
        code: "39732311000001104".parse().unwrap(),
        description: "Amoxicillin 250mg capsules".into(),
        quantity: 21,
        unit: "capsule".into(),
        dosage: "One capsule three times a day".into(),
        dispensed,
    };
    Prescription {
        id: PrescriptionId::new(0x04F4C2, &organisation, 0x7F717).unwrap(),
        patient: nhs("9000000009"),
        prescriber: Uuid::from_u128(7),
        organisation,
        nominated_pharmacy: Some(ods("FCG71")),
        items: vec![item(7)],
        status: PrescriptionStatus::WithDispenserActive,
        dispenser: Some(ods("FCG71")),
        cancellation_pending: false,
        created_ms: 1_000,
        version: 3,
        history: vec![StatusChange {
            action: EpsActionKind::Release,
            from: PrescriptionStatus::ToBeDispensed,
            to: PrescriptionStatus::WithDispenser,
            by: Some(ods("FCG71")),
            at_ms: 2_000,
        }],
    }
}

fn service() -> Service {
    Service {
        id: ServiceId(11_000),
        name: "Forthright Cardiology Business Service".into(),
        provider: ods("R69"),
        specialty: "CARDIOLOGY".parse::<Specialty>().unwrap(),
        clinic_type: "HEART_FAILURE".parse::<ClinicType>().unwrap(),
    }
}

fn ubrn() -> Ubrn {
    Ubrn::try_from(70_000).unwrap()
}

/// A slot booked, and the same slot released.
fn slots() -> [Slot; 2] {
    let start = SlotStart::new(date("2027-01-04"), 540).unwrap();
    let free = Slot::new(
        SlotId::of_service(ServiceId(11_000), 1),
        ServiceId(11_000),
        start,
        20,
    )
    .unwrap();
    let booking = Uuid::from_u128(9);
    let booked = book_slot(&free, ubrn(), booking, ServiceId(11_000)).unwrap();
    let released = release_slot(&booked, booking).unwrap();
    [booked, released]
}

fn referral_record() -> ReferralRecord {
    let slot = SlotId::of_service(ServiceId(11_000), 1);
    let created = referral::create(
        ubrn(),
        nhs("9000000009"),
        ods("Y90001"),
        "CARDIOLOGY".parse().unwrap(),
        Priority::Urgent,
        vec![ServiceId(11_000)],
    )
    .unwrap();
    let pending =
        referral::begin_booking(&created, slot, ServiceId(11_000), Uuid::from_u128(9)).unwrap();
    let booked = referral::confirm_booking(&pending, Uuid::from_u128(9)).unwrap();
    ReferralRecord {
        releasing: vec![*booked.booking().unwrap()],
        referral: booked,
    }
}

fn transfer() -> Transfer {
    let document = b"a patient's record".to_vec();
    let started = gp2gp::start(
        TransferId::new(7).unwrap(),
        NewTransfer {
            patient: nhs("9000000009"),
            from_practice: ods("A81001"),
            to_practice: ods("B82002"),
            document_size: document.len() as u64,
            document_sha256: Sha256Hash::of(&document),
        },
        1_000,
    )
    .unwrap();
    match gp2gp::accept_chunk(&started, &ods("A81001"), 0, &document, 2_000).unwrap() {
        ChunkOutcome::Accepted(next) => next,
        other => panic!("{other:?}"),
    }
}

fn event() -> AuditEvent {
    AuditEvent {
        time_ms: 1_764_752_400_000,
        user: Uuid::from_u128(0x5f0e_8c4d_0a6b_4c49_9d2e_1a3b_4c5d_6e7f),
        role_profile: "R8000".into(),
        organisation: "A81001".into(),
        system: "200000000001".into(),
        action: AuditAction::PdsRetrieve,
        patient: Some(nhs("9000000009")),
        outcome: AuditOutcome::Allowed,
        reason: None,
        alert: None,
    }
}

/// A payload sample: traced, and encoded as its kind's records are.
mod payload_sample {
    use serde_reflection::{Format, Samples, Tracer};

    pub(super) trait Sample {
        fn trace(&self, tracer: &mut Tracer) -> Format;
        fn encoded(&self) -> Vec<u8>;
    }

    macro_rules! sample {
        ($($type:ty => |$value:ident| $encode:expr),+ $(,)?) => {$(
            impl Sample for $type {
                fn trace(&self, tracer: &mut Tracer) -> Format {
                    tracer.trace_value(&mut Samples::new(), self).unwrap().0
                }

                fn encoded(&self) -> Vec<u8> {
                    let $value = self;
                    $encode
                }
            }
        )+};
    }

    sample! {
        spine_core::shard::records::patient::PatientRecord<'_> => |value| value.encode(),
        spine_core::shard::alerts::AlertRecord<'_> => |value| value.encode(),
        spine_core::shard::records::outcome::OutcomeRecordPayload<'_> => |value| value.encode(),
        spine_core::shard::meta::ShardMeta => |value| value.encode(),
        spine_core::shard::records::scr::ScrRecord<'_> => |value| value.encode(),
        spine_core::shard::records::prescription::PrescriptionRecord<'_> => |value| value.encode(),
        spine_core::shard::records::service::ServiceRecordPayload<'_> => |value| value.encode(),
        spine_core::shard::records::slot::SlotRecord => |value| value.encode(),
        spine_core::shard::records::referral::ReferralRecordPayload<'_> => |value| value.encode(),
        spine_core::shard::records::transfer::TransferRecord<'_> => |value| value.encode(),
        spine_core::shard::registrations::PreviousPractice => |value| value.encode(),
    }
}

/// Traces `value`, a sample of `kind`'s payload: checks that its encoding starts with the kind's
/// version and that the document names the traced type.
fn trace_root(
    tracer: &mut Tracer,
    doc: &Doc,
    kind: RecordKind,
    value: &dyn payload_sample::Sample,
    problems: &mut Vec<String>,
) {
    let format = value.trace(tracer);
    let root = doc.root(kind);
    if format != Format::TypeName(root.clone()) {
        problems.push(format!(
            "kind {}: the document's payload is {root}, the code's {format:?}",
            kind.name()
        ));
    }
    let version = value.encoded()[0];
    if Some(version) != kind.payload_version() {
        problems.push(format!(
            "kind {}: payload_version() is {:?}, the encoder writes {version}",
            kind.name(),
            kind.payload_version(),
        ));
    }
}

fn alert_record() -> AlertRecord<'static> {
    AlertRecord {
        organisation: "Y9H01",
        audit_index: 42,
        event: &[1, 2, 3],
    }
}

fn outcome_record() -> OutcomeRecord {
    OutcomeRecord {
        request_id: Uuid::from_u128(5),
        fingerprint: 7,
        sequence: 3,
        outcome: Ok(Written {
            key: 1 << 56,
            index: 4,
        }),
    }
}

fn service_record() -> ServiceRecord {
    ServiceRecord {
        service: service(),
        slots_published: 3,
        last_publication: 0..3,
    }
}

fn previous_practice() -> PreviousPractice {
    PreviousPractice {
        practice: ods("Y90002"),
        left_at_version: 2,
    }
}

/// Traces every payload type, from samples and (for enums, so that every variant is seen) from
/// their `Deserialize`.
fn trace_payloads(doc: &Doc, problems: &mut Vec<String>) -> Registry {
    let mut tracer = Tracer::new(tracer_config());
    let mut root = |kind, value: &dyn payload_sample::Sample| {
        trace_root(&mut tracer, doc, kind, value, problems);
    };
    root(
        RecordKind::Patient,
        &records::patient::PatientRecord::from(&patient()),
    );
    root(RecordKind::Alert, &alert_record());
    root(
        RecordKind::Outcome,
        &records::outcome::OutcomeRecordPayload::from(&outcome_record()),
    );
    root(RecordKind::Meta, &ShardMeta::new(900_000_000));
    root(RecordKind::Scr, &records::scr::ScrRecord::from(&scr()));
    root(
        RecordKind::Prescription,
        &records::prescription::PrescriptionRecord::from(&prescription()),
    );
    root(
        RecordKind::Service,
        &records::service::ServiceRecordPayload::from(&service_record()),
    );
    for slot in slots() {
        root(RecordKind::Slot, &records::slot::SlotRecord::from(&slot));
    }
    root(
        RecordKind::Referral,
        &records::referral::ReferralRecordPayload::from(&referral_record()),
    );
    root(
        RecordKind::Transfer,
        &records::transfer::TransferRecord::from(&transfer()),
    );
    root(RecordKind::Registration, &previous_practice());
    // The audit record is hand-written (`the_audit_record_is_as_documented`), a chunk raw.
    let traced = trace_enums(&mut tracer);
    let registry = tracer.registry().unwrap();
    for (name, container) in &registry {
        if matches!(container, ContainerFormat::Enum(_)) && !traced.contains(name) {
            problems.push(format!(
                "enum {name} is in a payload: trace it in trace_enums, so that all its variants \
                 are seen"
            ));
        }
    }
    registry
}

/// Every variant of every payload enum, from its `Deserialize`; the enums' names.
fn trace_enums(tracer: &mut Tracer) -> BTreeSet<String> {
    let formats = [
        tracer
            .trace_simple_type::<records::outcome::OutcomePayload<'static>>()
            .unwrap()
            .0,
        tracer
            .trace_simple_type::<records::referral::StatePayload>()
            .unwrap()
            .0,
        tracer
            .trace_simple_type::<records::referral::PriorPayload>()
            .unwrap()
            .0,
        tracer
            .trace_simple_type::<records::referral::EventPayload>()
            .unwrap()
            .0,
        tracer
            .trace_simple_type::<records::transfer::StatePayload>()
            .unwrap()
            .0,
        tracer
            .trace_simple_type::<records::transfer::CancelledByPayload>()
            .unwrap()
            .0,
    ];
    formats
        .into_iter()
        .map(|format| match format {
            Format::TypeName(name) => name,
            other => panic!("an enum traces by name: {other:?}"),
        })
        .collect()
}

fn assert_none(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "core/RECORDS.md and the code disagree:\n  {}",
        problems.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// The checks.

#[test]
fn the_kind_table_lists_every_kind_with_its_section() {
    let doc = Doc::read();
    let table = doc.table(KIND_HEADING);
    let documented: Vec<(String, String, String)> = table
        .rows
        .iter()
        .map(|row| (row[0].clone(), row[1].clone(), row[2].clone()))
        .collect();
    let code: Vec<(String, String, String)> = RecordKind::ALL
        .iter()
        .map(|&kind| {
            let version = kind
                .payload_version()
                .map_or_else(|| "\u{2014}".to_owned(), |version| version.to_string());
            ((kind as u8).to_string(), kind.name().to_owned(), version)
        })
        .collect();
    assert_eq!(
        documented, code,
        "the kind table's number, name and version columns"
    );
    for (row, kind) in table.rows.iter().zip(RecordKind::ALL) {
        assert_eq!(RecordKind::from_u8(kind as u8), Some(kind));
        // The key's namespace is the kind's number.
        assert_eq!(
            code_spans(&row[3]).first().copied(),
            Some((kind as u8).to_string().as_str()),
            "kind {}: the key column starts with its namespace",
            kind.name()
        );
    }
    // One section per kind, in order, and none for a kind the code lacks.
    let titles: Vec<&str> = doc
        .sections
        .iter()
        .filter(|section| section.level == 3)
        .map(|section| section.title.as_str())
        .collect();
    let expected: Vec<String> = RecordKind::ALL
        .iter()
        .map(|&kind| format!("Kind {}: {}", kind as u8, kind.name()))
        .collect();
    assert_eq!(titles, expected, "the kinds' sections");
    for kind in RecordKind::ALL {
        let line = doc.payload_line(kind);
        match kind.payload_version() {
            Some(version) => assert!(
                line.contains(&format!("version `{version}`"))
                    || line.contains(&format!("version byte `{version}`")),
                "{line}: the version is {version}"
            ),
            None => assert!(line.contains("no version byte"), "{line}"),
        }
    }
}

#[test]
fn every_postcard_payload_is_documented_field_by_field() {
    let doc = Doc::read();
    let mut problems = Vec::new();
    let registry = trace_payloads(&doc, &mut problems);
    problems.extend(doc.model.check_registry(&registry));
    problems.extend(check_value_types(&doc));
    problems.extend(check_code_lists(&doc));
    assert_none(&problems);
}

/// Each code list's numbers in the document against the domain's (`spine_domain::codes`).
fn check_code_lists(doc: &Doc) -> Vec<String> {
    fn values<T: CodeList>() -> Vec<(u32, String)> {
        T::VALUES
            .iter()
            .map(|&(index, name)| (index, name.to_owned()))
            .collect()
    }
    let mut problems = Vec::new();
    for (name, documented) in &doc.model.code_lists {
        let code = match name.as_str() {
            "NameUse" => values::<NameUse>(),
            "Gender" => values::<Gender>(),
            "DeathNotificationStatus" => values::<DeathNotificationStatus>(),
            "AddressUse" => values::<AddressUse>(),
            "ContactSystem" => values::<ContactSystem>(),
            "ContactUse" => values::<ContactUse>(),
            "ScrPermission" => values::<ScrPermission>(),
            "PrescriptionStatus" => values::<PrescriptionStatus>(),
            "EpsActionKind" => values::<EpsActionKind>(),
            "Priority" => values::<Priority>(),
            "ErrorCode" => values::<ErrorCode>(),
            other => {
                problems.push(format!("code list {other}: not one of this test's"));
                continue;
            }
        };
        if *documented != code {
            problems.push(format!(
                "code list {name}: the document numbers {documented:?}, the code {code:?}"
            ));
        }
    }
    problems
}

fn format_of<T: Serialize>(value: &T) -> Format {
    Tracer::new(tracer_config())
        .trace_value(&mut Samples::new(), value)
        .unwrap()
        .0
}

/// Each value type's traced encoding against the document's.
fn check_value_types(doc: &Doc) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, encoded) in &doc.model.aliases {
        if doc.model.code_lists.contains_key(name) {
            continue; // a number: `check_code_lists`
        }
        let format = match name.as_str() {
            "NhsNumber" => format_of(&nhs("9000000009")),
            "OdsCode" => format_of(&ods("A81001")),
            "Postcode" => format_of(&"LS1 6AE".parse::<Postcode>().unwrap()),
            "Date" => format_of(&date("2010-10-22")),
            "Uuid" => format_of(&Uuid::from_u128(1)),
            "PrescriptionId" => format_of(&prescription().id),
            "DmdCode" => format_of(&prescription().items[0].code),
            "ServiceId" => format_of(&ServiceId(11_000)),
            "SlotId" => format_of(&SlotId(11_000 << 24)),
            "SlotStart" => format_of(&SlotStart::new(date("2027-01-04"), 540).unwrap()),
            "Specialty" => format_of(&service().specialty),
            "ClinicType" => format_of(&service().clinic_type),
            "Ubrn" => format_of(&ubrn()),
            "TransferId" => format_of(&TransferId::new(7).unwrap()),
            // A newtype struct, a container of its own: checked with the payloads' registry.
            "Sha256Hash" => continue,
            other => {
                problems.push(format!("value type {other}: no sample in this test"));
                continue;
            }
        };
        problems.extend(doc.model.check(&Registry::new(), encoded, &format, name));
    }
    problems
}

// ---- The audit record.

/// One decoded field of an audit event.
#[derive(Debug, PartialEq)]
enum EventField {
    U8(u8),
    U64(u64),
    Bytes(Vec<u8>),
    Text(String),
    /// A code's name in its table, and the text that follows it, if any.
    Code(String, Option<String>),
}

/// The code tables of the audit event: code → name.
fn code_table(doc: &Doc, title: &str, column: &str) -> BTreeMap<u8, String> {
    let table = doc.section_table(title, &format!("| code | {column} | meaning |"));
    table
        .rows
        .iter()
        .map(|row| {
            let name = if row[1] == "none" {
                "none".to_owned()
            } else {
                code(&row[1]).to_owned()
            };
            (row[0].parse().unwrap(), name)
        })
        .collect()
}

/// The event's fields in the document's order, with their encodings.
fn event_layout(doc: &Doc) -> Vec<(String, String)> {
    doc.section_table("Audit event", "| field | encoding | meaning |")
        .rows
        .iter()
        .map(|row| (code(&row[0]).to_owned(), code(&row[1]).to_owned()))
        .collect()
}

fn text(bytes: &mut Bytes<'_>) -> Result<String, String> {
    let length = usize::from(u16::from_le_bytes(bytes.take(2)?.try_into().unwrap()));
    if length > 1024 {
        return Err(format!("text of {length} bytes"));
    }
    let text = std::str::from_utf8(bytes.take(length)?).map_err(|e| e.to_string())?;
    Ok(text.to_owned())
}

/// An event's bytes decoded by the document's table alone.
fn decode_event(doc: &Doc, event: &[u8]) -> Result<Vec<(String, EventField)>, String> {
    let actions = code_table(doc, "AuditAction codes", "action");
    let outcomes = code_table(doc, "AuditOutcome codes", "outcome");
    let alerts = code_table(doc, "AccessAlert codes", "alert");
    let name = |table: &BTreeMap<u8, String>, code: u8| {
        table
            .get(&code)
            .cloned()
            .ok_or_else(|| format!("no code {code}"))
    };
    let mut bytes = Bytes { bytes: event };
    let mut fields = Vec::new();
    for (field, encoding) in event_layout(doc) {
        let value = match encoding.as_str() {
            "u8" => EventField::U8(bytes.take(1)?[0]),
            "u64 LE" => EventField::U64(bytes.u64_le()?),
            "[u8; 16]" => EventField::Bytes(bytes.take(16)?.to_vec()),
            "text" => EventField::Text(text(&mut bytes)?),
            "u8 action" => EventField::Code(name(&actions, bytes.take(1)?[0])?, None),
            "u8 outcome" => {
                let outcome = name(&outcomes, bytes.take(1)?[0])?;
                // The documented refusal carries its code.
                let code = (outcome == "Refused")
                    .then(|| text(&mut bytes))
                    .transpose()?;
                EventField::Code(outcome, code)
            }
            "u8 tag" => match bytes.take(1)?[0] {
                0 => EventField::Code("none".into(), None),
                1 => EventField::Code("some".into(), Some(text(&mut bytes)?)),
                other => return Err(format!("tag {other}")),
            },
            "u8 alert" => EventField::Code(name(&alerts, bytes.take(1)?[0])?, None),
            other => return Err(format!("unknown encoding {other}")),
        };
        fields.push((field, value));
    }
    if !bytes.bytes.is_empty() {
        return Err(format!("{} bytes after the event", bytes.bytes.len()));
    }
    Ok(fields)
}

/// What the document's decoding of an event must give for `event`.
fn expected_fields(event: &AuditEvent) -> Vec<(String, EventField)> {
    let variant = |debug: String| debug.split([' ', '(', '{']).next().unwrap().to_owned();
    let outcome = match &event.outcome {
        AuditOutcome::Allowed => EventField::Code("Allowed".into(), None),
        AuditOutcome::Refused { code } => EventField::Code("Refused".into(), Some(code.clone())),
    };
    [
        (
            "version",
            EventField::U8(RecordKind::Audit.payload_version().unwrap()),
        ),
        ("time_ms", EventField::U64(event.time_ms)),
        ("user", EventField::Bytes(event.user.as_bytes().to_vec())),
        ("role_profile", EventField::Text(event.role_profile.clone())),
        ("organisation", EventField::Text(event.organisation.clone())),
        ("system", EventField::Text(event.system.clone())),
        (
            "action",
            EventField::Code(variant(format!("{:?}", event.action)), None),
        ),
        (
            "patient",
            EventField::U64(event.patient.map_or(0, NhsNumber::value)),
        ),
        ("outcome", outcome),
        (
            "reason",
            EventField::Code(
                if event.reason.is_some() {
                    "some"
                } else {
                    "none"
                }
                .into(),
                event.reason.clone(),
            ),
        ),
        (
            "alert",
            EventField::Code(
                event
                    .alert
                    .map_or("none".into(), |a| variant(format!("{a:?}"))),
                None,
            ),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// The chain prefix's fields as the document places them, checked against the code's parse.
fn check_prefix(doc: &Doc, payload: &[u8], problems: &mut Vec<String>) {
    let table = doc.section_table("Audit chain prefix", "| offset | size | field | meaning |");
    let parsed = ChainRecord::parse(payload).unwrap();
    let mut offset = 0;
    for row in &table.rows {
        assert_eq!(
            row[0],
            offset.to_string(),
            "the prefix's fields follow each other"
        );
        if row[1] == "to the end" {
            assert_eq!(
                offset, RECORD_PREFIX_SIZE,
                "the event starts after the prefix"
            );
            assert_eq!(&payload[offset..], parsed.event);
            continue;
        }
        let size: usize = row[1].parse().unwrap();
        let bytes = &payload[offset..offset + size];
        let field = code(&row[2]);
        let agrees = match field {
            "sequence" => bytes == parsed.sequence.to_le_bytes(),
            "previous" => bytes == parsed.previous,
            "hash" => bytes == parsed.hash,
            "trail" => bytes == parsed.trail.to_le_bytes(),
            other => {
                problems.push(format!("prefix field {other} is not the code's"));
                true
            }
        };
        if !agrees {
            problems.push(format!("prefix field {field} is not at offset {offset}"));
        }
        offset += size;
    }
    // The hash as the document gives it.
    let hash_row = table.rows.iter().find(|row| row[2] == "`hash`").unwrap();
    let tag = "spine-audit-chain-v2";
    assert!(hash_row[3].contains(&format!("`{tag}`")));
    let mut hasher = Sha256::new();
    hasher.update(tag.as_bytes());
    hasher.update(parsed.sequence.to_le_bytes());
    hasher.update(parsed.previous);
    hasher.update(parsed.trail.to_le_bytes());
    hasher.update(parsed.event);
    if <[u8; 32]>::from(hasher.finalize()) != parsed.hash {
        problems.push(format!(
            "record {}: the documented hash differs",
            parsed.sequence
        ));
    }
}

#[test]
fn the_audit_record_is_as_documented() {
    let doc = Doc::read();
    let mut problems = Vec::new();
    // The event's fields are `AuditEvent`'s, in order, after the version byte.
    let mut tracer = Tracer::new(tracer_config());
    let complete = AuditEvent {
        reason: Some("unconscious in A&E".into()),
        alert: Some(AccessAlert::EmergencyAccess),
        ..event()
    };
    tracer.trace_value(&mut Samples::new(), &complete).unwrap();
    let (_, actions) = tracer.trace_simple_type::<AuditAction>().unwrap();
    let (_, alerts) = tracer.trace_simple_type::<AccessAlert>().unwrap();
    tracer.trace_simple_type::<AuditOutcome>().unwrap();
    let registry = tracer.registry().unwrap();
    let Some(ContainerFormat::Struct(fields)) = registry.get("AuditEvent") else {
        panic!("AuditEvent is a struct");
    };
    let code_fields: Vec<&str> = std::iter::once("version")
        .chain(fields.iter().map(|field| field.name.as_str()))
        .collect();
    let layout = event_layout(&doc);
    let doc_fields: Vec<&str> = layout.iter().map(|(name, _)| name.as_str()).collect();
    if doc_fields != code_fields {
        problems.push(format!(
            "event fields: the document's {doc_fields:?}, the code's {code_fields:?}"
        ));
    }
    // Every action, alert, outcome and optional field, encoded by the code and decoded by the
    // document.
    let code_count = |title, column| code_table(&doc, title, column).len();
    assert_eq!(
        code_count("AuditAction codes", "action"),
        actions.len(),
        "one code per action"
    );
    assert_eq!(
        code_count("AccessAlert codes", "alert"),
        alerts.len() + 1,
        "and none"
    );
    let mut events = Vec::new();
    for action in actions {
        events.push(AuditEvent { action, ..event() });
    }
    for alert in alerts {
        events.push(AuditEvent {
            alert: Some(alert),
            reason: Some("unconscious in A&E".into()),
            ..event()
        });
    }
    events.push(AuditEvent {
        outcome: AuditOutcome::Refused {
            code: "ACCESS_DENIED".into(),
        },
        patient: None,
        ..event()
    });
    let mut chain = AuditChain::new();
    for (trail, event) in events.iter().enumerate() {
        let mut payload = Vec::new();
        chain.append(event, trail as u64 * 3, &mut payload).unwrap();
        check_prefix(&doc, &payload, &mut problems);
        match decode_event(&doc, &payload[RECORD_PREFIX_SIZE..]) {
            Ok(fields) if fields == expected_fields(event) => {}
            Ok(fields) => {
                problems.push(format!("{event:?} decodes per the document as {fields:?}"))
            }
            Err(error) => problems.push(format!("{event:?}: {error}")),
        }
    }
    assert_none(&problems);
}

#[test]
fn version_1_outcomes_read_as_documented() {
    let doc = Doc::read();
    let nhs = nhs("9000000009");
    for outcome in [
        Ok((nhs, 42u64)),
        Err(Refusal::new(ErrorCode::InvalidValue, "no")),
    ] {
        // A value of the documented layout, with the code's types (an error code as its
        // number in the list).
        let stored = outcome
            .clone()
            .map_err(|refusal: Refusal| (refusal.code.index(), refusal.message));
        let old = (Uuid::from_u128(5), 7u64, 3u64, stored);
        let mut payload = vec![1];
        payload.extend(postcard::to_allocvec(&old).unwrap());
        let by_doc = doc
            .model
            .decode_payload("PatientOutcomeRecord", &payload[1..])
            .unwrap();
        assert_eq!(by_doc, value_of(&old), "the documented version 1 layout");
        // And its types, which the bytes alone do not tell apart: the tuple's, in order.
        let root = Ty::Named("PatientOutcomeRecord".into(), Vec::new());
        let mut types = Vec::new();
        doc.model.leaf_types(&root, &by_doc, &mut types);
        let expected: &[&str] = match outcome {
            Ok(_) => &["Uuid", "u64", "u64", "NhsNumber", "u64"],
            Err(_) => &["Uuid", "u64", "u64", "ErrorCode", "String"],
        };
        assert_eq!(types, expected, "the documented version 1 types");
        let read = records::outcome::decode(&payload).expect("version 1 reads");
        assert_eq!(
            (read.request_id, read.fingerprint, read.sequence),
            (old.0, old.1, old.2)
        );
        let expected = outcome.map(|(nhs, index)| Written {
            key: record_layout::patient_key(nhs).get(),
            index,
        });
        assert_eq!(read.outcome, expected);
    }
    assert!(
        doc.payload_line(RecordKind::Outcome)
            .contains("version `1` is still read")
    );
}

// ---- The golden fixture, decoded by the document.

/// Every record of the golden fixture: kind, key, whether it deletes, payload.
fn golden_records() -> Vec<(u8, Option<u64>, bool, Vec<u8>)> {
    let mut engine = EngineConfig::new(Path::new(GOLDEN));
    engine.shards = 1;
    engine.segment_size = 512 * 1024;
    engine.expected_keys_per_shard = 1 << 10;
    let mut config = engine.log_config(0);
    config.use_checkpoint = false;
    config.checkpoint_interval_records = 0;
    let (log, _) = Log::open_read_only(config, Arc::new(ShardIndexes)).unwrap();
    (1..=log.last_position().index)
        .map(|index| {
            log.read(index, |view| {
                (
                    view.kind(),
                    view.key().map(|key| key.get()),
                    view.is_delete(),
                    view.payload().to_vec(),
                )
            })
            .unwrap()
            .unwrap()
        })
        .collect()
}

/// The code's own reading of a postcard payload, as a traced value, and the key value it has.
fn decoded_by_code(kind: RecordKind, payload: &[u8]) -> (Value, Option<u64>) {
    match kind {
        RecordKind::Patient => {
            let value = records::patient::decode(payload).unwrap();
            let record = records::patient::PatientRecord::from(&value);
            (value_of(&record), Some(value.nhs_number.value()))
        }
        RecordKind::Alert => (value_of(&alerts::decode(payload).unwrap()), None),
        RecordKind::Outcome => {
            let value = records::outcome::decode(payload).unwrap();
            let record = records::outcome::OutcomeRecordPayload::from(&value);
            (value_of(&record), None)
        }
        RecordKind::Meta => (value_of(&ShardMeta::decode(payload).unwrap()), Some(1)),
        RecordKind::Scr => {
            let value = records::scr::decode(payload).unwrap();
            let record = records::scr::ScrRecord::from(&value);
            (value_of(&record), Some(value.nhs_number.value()))
        }
        RecordKind::Prescription => {
            let value = records::prescription::decode(payload).unwrap();
            let record = records::prescription::PrescriptionRecord::from(&value);
            (value_of(&record), Some(value.id.key_value()))
        }
        RecordKind::Service => {
            let value = records::service::decode(payload).unwrap();
            let record = records::service::ServiceRecordPayload::from(&value);
            (value_of(&record), Some(u64::from(value.service.id.0)))
        }
        RecordKind::Slot => {
            let value = records::slot::decode(payload).unwrap();
            let record = records::slot::SlotRecord::from(&value);
            (value_of(&record), Some(value.id().0))
        }
        RecordKind::Referral => {
            let value = records::referral::decode(payload).unwrap();
            let record = records::referral::ReferralRecordPayload::from(&value);
            (value_of(&record), Some(value.referral.ubrn().value()))
        }
        RecordKind::Transfer => {
            let value = records::transfer::decode(payload).unwrap();
            let record = records::transfer::TransferRecord::from(&value);
            (value_of(&record), Some(value.id().get()))
        }
        RecordKind::Registration => (value_of(&PreviousPractice::decode(payload).unwrap()), None),
        RecordKind::Audit | RecordKind::Chunk => unreachable!("not postcard"),
    }
}

/// The index table's rows: index → (kind, fixed key length if the column gives one).
fn index_rows(doc: &Doc) -> BTreeMap<u8, (u8, Option<usize>)> {
    let table = doc.table(INDEX_HEADING);
    let constants = [
        ("INDEX_NAME_BIRTH", record_layout::INDEX_NAME_BIRTH),
        (
            "INDEX_ALERTS_BY_ORGANISATION",
            record_layout::INDEX_ALERTS_BY_ORGANISATION,
        ),
        ("INDEX_NOMINATED", record_layout::INDEX_NOMINATED),
        (
            "INDEX_SERVICES_BY_SPECIALTY",
            record_layout::INDEX_SERVICES_BY_SPECIALTY,
        ),
        ("INDEX_FREE_SLOTS", record_layout::INDEX_FREE_SLOTS),
        (
            "INDEX_REFERRALS_TO_REPAIR",
            record_layout::INDEX_REFERRALS_TO_REPAIR,
        ),
    ];
    assert_eq!(
        table.rows.len(),
        record_layout::INDEX_COUNT,
        "one row per index"
    );
    assert_eq!(constants.len(), record_layout::INDEX_COUNT);
    table
        .rows
        .iter()
        .map(|row| {
            let index: u8 = row[0].parse().unwrap();
            let constant = code(&row[1]);
            let value = constants
                .iter()
                .find(|(name, _)| *name == constant)
                .unwrap_or_else(|| panic!("{constant} is not an index constant"))
                .1;
            assert_eq!(index, value, "{constant}");
            let kind: u8 = code(&row[2]).parse().unwrap();
            let length = row[4]
                .split_once(':')
                .and_then(|(length, _)| length.parse().ok());
            (index, (kind, length))
        })
        .collect()
}

/// What a walk over the fixture needs from the document.
struct Golden<'d> {
    doc: &'d Doc,
    kinds: Table,
    indexes: BTreeMap<u8, (u8, Option<usize>)>,
    /// The digest of each chunk held, by (transfer id, index), from the transfer records.
    digests: BTreeMap<(u64, u32), Sha256Hash>,
}

impl Golden<'_> {
    fn check(&self, at: &str, record: &(u8, Option<u64>, bool, Vec<u8>)) -> Vec<String> {
        let (kind_byte, key, delete, payload) = record;
        let kind = RecordKind::from_u8(*kind_byte).unwrap();
        let row = self
            .kinds
            .rows
            .iter()
            .find(|row| row[0] == kind_byte.to_string())
            .unwrap();
        let mut problems = Vec::new();
        let namespace: u64 = code_spans(&row[3])[0].parse().unwrap();
        match key {
            Some(key) if key >> 56 == namespace => {}
            None if kind == RecordKind::Audit => {}
            other => problems.push(format!(
                "{at}: key {other:x?} outside namespace {namespace}"
            )),
        }
        let value_bits = key.map(|key| key & ((1 << 56) - 1));
        if *delete {
            if !payload.is_empty() || kind != RecordKind::Chunk {
                problems.push(format!("{at}: only chunks are deleted, with no payload"));
            }
            return problems;
        }
        problems.extend(self.check_indexes(at, kind, &row[4], payload));
        match kind {
            RecordKind::Audit => problems.extend(self.check_audit(at, value_bits, payload)),
            RecordKind::Chunk => {
                let bits = value_bits.unwrap();
                match self.digests.get(&(bits >> 9, (bits & 511) as u32)) {
                    Some(digest) if *digest == Sha256Hash::of(payload) => {}
                    other => problems.push(format!("{at}: chunk digest {other:?}")),
                }
            }
            _ => problems.extend(self.check_postcard(at, kind, value_bits, payload)),
        }
        problems
    }

    fn check_audit(&self, at: &str, key_value: Option<u64>, payload: &[u8]) -> Vec<String> {
        let mut problems = Vec::new();
        check_prefix(self.doc, payload, &mut problems);
        let record = ChainRecord::parse(payload).unwrap();
        let event = record.decode_event().unwrap();
        if key_value != event.patient.map(NhsNumber::value) {
            problems.push(format!(
                "{at}: key {key_value:?} for patient {:?}",
                event.patient
            ));
        }
        match decode_event(self.doc, record.event) {
            Ok(fields) if fields == expected_fields(&event) => {}
            other => problems.push(format!("{at}: the document decodes {other:?}")),
        }
        problems
    }

    fn check_postcard(
        &self,
        at: &str,
        kind: RecordKind,
        key_value: Option<u64>,
        payload: &[u8],
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let version = payload[0];
        if Some(version) != kind.payload_version() {
            problems.push(format!("{at}: version {version}"));
        }
        let (code, expected_key) = decoded_by_code(kind, payload);
        match self
            .doc
            .model
            .decode_payload(&self.doc.root(kind), &payload[1..])
        {
            Ok(value) if value == code => {}
            Ok(value) => problems.push(format!(
                "{at} ({}): the document decodes\n    {value:?}\n  the code\n    {code:?}",
                kind.name()
            )),
            Err(error) => problems.push(format!("{at} ({}): {error}", kind.name())),
        }
        if expected_key.is_some() && expected_key != key_value {
            problems.push(format!(
                "{at}: key value {key_value:?}, expected {expected_key:?}"
            ));
        }
        problems
    }

    /// The record's secondary index entries against section 5 and the kind table's column.
    fn check_indexes(
        &self,
        at: &str,
        kind: RecordKind,
        column: &str,
        payload: &[u8],
    ) -> Vec<String> {
        let mut entries = Vec::new();
        record_layout::secondary_keys(kind as u8, payload, &mut entries);
        let listed: Vec<u8> = code_spans(column)
            .iter()
            .map(|span| span.parse().unwrap())
            .collect();
        let mut problems = Vec::new();
        for entry in &entries {
            let (index_kind, length) = self.indexes[&entry.index];
            if index_kind != kind as u8 || !listed.contains(&entry.index) {
                problems.push(format!(
                    "{at}: an entry in index {} is not documented",
                    entry.index
                ));
            }
            if length.is_some_and(|length| length != entry.key.len())
                || !index_key_as_documented(entry.index, &entry.key, payload)
            {
                problems.push(format!(
                    "{at}: index {} key {:02x?}",
                    entry.index, entry.key
                ));
            }
        }
        problems
    }
}

/// Whether an index key is built from its record as section 5 says.
fn index_key_as_documented(index: u8, key: &[u8], payload: &[u8]) -> bool {
    let code_then_zero = |code: &str| key == [code.as_bytes(), &[0]].concat();
    match index {
        record_layout::INDEX_NAME_BIRTH => {
            let patient = records::patient::decode(payload).unwrap();
            let (year, month, day) = patient.birth_date.unwrap().parts();
            let yyyymmdd = u32::from(year) * 10_000 + u32::from(month) * 100 + u32::from(day);
            key[2..] == yyyymmdd.to_be_bytes()
        }
        record_layout::INDEX_ALERTS_BY_ORGANISATION => {
            code_then_zero(alerts::decode(payload).unwrap().organisation)
        }
        record_layout::INDEX_NOMINATED => {
            let prescription = records::prescription::decode(payload).unwrap();
            prescription.status == PrescriptionStatus::ToBeDispensed
                && code_then_zero(prescription.nominated_pharmacy.unwrap().as_str())
        }
        record_layout::INDEX_SERVICES_BY_SPECIALTY => {
            let record = records::service::decode(payload).unwrap();
            *key == Sha256::digest(record.service.specialty.as_str())[..8]
        }
        record_layout::INDEX_FREE_SLOTS => {
            let slot = records::slot::decode(payload).unwrap();
            let day = u32::try_from(slot.start().day_number() + (1 << 31)).unwrap();
            let built = [
                &slot.service().0.to_be_bytes()[..],
                &day.to_be_bytes(),
                &slot.start().minute().to_be_bytes(),
            ]
            .concat();
            slot.is_free() && key == built
        }
        record_layout::INDEX_REFERRALS_TO_REPAIR => key == [1],
        other => panic!("index {other}"),
    }
}

/// The hex bytes of a section's example: the leading hex words of each line of its code block.
fn example_bytes(section: &Section) -> Vec<u8> {
    let hex =
        |word: &str| word.len().is_multiple_of(2) && word.bytes().all(|b| b.is_ascii_hexdigit());
    section
        .lines
        .iter()
        .skip_while(|line| !line.starts_with("```"))
        .skip(1)
        .take_while(|line| !line.starts_with("```"))
        .map(|line| {
            let words: Vec<&str> = line
                .split_whitespace()
                .take_while(|word| hex(word))
                .collect();
            words.concat()
        })
        .collect::<String>()
        .as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// Which kinds each index holds: the kind table's column, section 5's, and the code's entries
/// over the fixture (which has an entry in every index) are the same.
fn check_index_kinds(golden: &Golden<'_>, records: &[(u8, Option<u64>, bool, Vec<u8>)]) {
    let mut derived = BTreeSet::new();
    for (kind, _, delete, payload) in records {
        let mut entries = Vec::new();
        if !delete {
            record_layout::secondary_keys(*kind, payload, &mut entries);
        }
        derived.extend(entries.iter().map(|entry| (*kind, entry.index)));
    }
    let documented: BTreeSet<(u8, u8)> = golden
        .kinds
        .rows
        .iter()
        .flat_map(|row| {
            let kind: u8 = row[0].parse().unwrap();
            code_spans(&row[4])
                .into_iter()
                .map(move |index| (kind, index.parse().unwrap()))
        })
        .collect();
    assert_eq!(
        documented, derived,
        "(kind, index) pairs: the kind table's and the code's"
    );
    let by_section: BTreeSet<(u8, u8)> = golden
        .indexes
        .iter()
        .map(|(index, (kind, _))| (*kind, *index))
        .collect();
    assert_eq!(
        documented, by_section,
        "(kind, index) pairs: the kind table's and section 5's"
    );
}

#[test]
fn the_golden_fixture_decodes_by_the_document() {
    let doc = Doc::read();
    let records = golden_records();
    let mut digests = BTreeMap::new();
    for (kind, _, _, payload) in &records {
        if *kind == RecordKind::Transfer as u8 {
            let transfer = records::transfer::decode(payload).unwrap();
            for index in 0..transfer.chunk_count() {
                if let Some(digest) = transfer.chunk_sha256(index) {
                    digests.insert((transfer.id().get(), index), digest);
                }
            }
        }
    }
    let golden = Golden {
        doc: &doc,
        kinds: doc.table(KIND_HEADING),
        indexes: index_rows(&doc),
        digests,
    };
    let mut problems = Vec::new();
    for (position, record) in records.iter().enumerate() {
        problems.extend(golden.check(&format!("golden record {}", position + 1), record));
    }
    let kinds: BTreeSet<u8> = records.iter().map(|(kind, ..)| *kind).collect();
    assert_eq!(
        kinds.len(),
        RecordKind::ALL.len(),
        "the fixture holds every kind"
    );
    check_index_kinds(&golden, &records);
    // The registration example is the code's bytes, and the fixture's.
    let written = PreviousPractice {
        practice: ods("Y90001"),
        left_at_version: 2,
    }
    .encode();
    let example = example_bytes(doc.section("PreviousPractice"));
    assert_eq!(example, written, "the registration example");
    assert!(
        records.iter().any(|(kind, _, _, payload)| {
            *kind == RecordKind::Registration as u8 && *payload == written
        }),
        "the example is in the fixture"
    );
    assert_none(&problems);
}
