//! A list field of a record: the domain's elements, each written in the record's form, and
//! read straight back into the domain's type as each element is decoded, so reading a record
//! builds every list once (a record is read on every retrieval, search and index rebuild).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An element of a record's list in its stored form, and its conversion into the domain's.
pub(super) trait StoredElement<'a, D: 'a>: From<&'a D> + Serialize {
    /// The domain's element, or what is wrong with the stored one.
    fn into_domain(self) -> Result<D, String>;
}

/// `Vec<R>` in a payload: the domain's `D`s as they are written, or as they were read.
pub(super) enum StoredList<'a, D, R> {
    /// The domain's elements, each written as `R::from(&element)`.
    Domain(&'a [D]),
    /// The elements read, each converted from its `R`; or the first one that would not
    /// convert, named by its index (`[1]: name_use: 7 is not one of ...`).
    Read(Result<Vec<D>, String>, PhantomData<R>),
}

impl<D: Clone, R> StoredList<'_, D, R> {
    /// The elements; what is wrong names the list `name`.
    pub(super) fn into_domain(self, name: &str) -> Result<Vec<D>, String> {
        match self {
            Self::Domain(elements) => Ok(elements.to_vec()),
            Self::Read(read, _) => read.map_err(|reason| format!("{name}{reason}")),
        }
    }
}

impl<'a, D: 'a, R: From<&'a D> + Serialize> Serialize for StoredList<'a, D, R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Domain(elements) => serializer.collect_seq(elements.iter().map(R::from)),
            Self::Read(..) => unreachable!("a list read is converted, never written again"),
        }
    }
}

impl<'de, 'a, D: 'a, R> Deserialize<'de> for StoredList<'a, D, R>
where
    R: StoredElement<'a, D> + Deserialize<'de>,
{
    fn deserialize<De: Deserializer<'de>>(deserializer: De) -> Result<Self, De::Error> {
        deserializer.deserialize_seq(ElementsVisitor(PhantomData))
    }
}

struct ElementsVisitor<'a, D, R>(PhantomData<(&'a D, R)>);

impl<'de, 'a, D: 'a, R> Visitor<'de> for ElementsVisitor<'a, D, R>
where
    R: StoredElement<'a, D> + Deserialize<'de>,
{
    type Value = StoredList<'a, D, R>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of record elements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // A hint past any list a record holds is damage's: never reserve on its word.
        let mut elements = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        let mut refused = None;
        let mut index = 0;
        while let Some(element) = seq.next_element::<R>()? {
            // After a refusal the rest is still read, so the fields after the list are read
            // where they are (a postcard list has no length in bytes to skip).
            if refused.is_none() {
                match element.into_domain() {
                    Ok(element) => elements.push(element),
                    Err(reason) => refused = Some(format!("[{index}]: {reason}")),
                }
            }
            index += 1;
        }
        Ok(StoredList::Read(
            refused.map_or(Ok(elements), Err),
            PhantomData,
        ))
    }
}
