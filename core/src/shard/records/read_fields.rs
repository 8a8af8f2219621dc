//! Reading a record straight into the domain's types: each struct of the record is read field
//! by field, in the record's order, into the domain's value ([`ReadStruct`]), with no stored
//! form built first and converted after. For the kinds read on every request (the patient, the
//! prescription). The record's form is the one its payload types write; each kind's round-trip
//! tests keep the two in step.
//!
//! A code past its list stops the read with a deserializer error, as a shape error does, but
//! postcard keeps no error's message: the refusal's reason is kept beside the read instead, and
//! each struct and list it passes through on the way out puts its field's name in front
//! (`names[1]: name_use: 7 is not one of ...`), so only a damaged record pays for the naming.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use spine_domain::codes::CodeList;

use super::{code, versioned};

/// The `T` in `payload` (its version byte `version`, then the record with no byte left over),
/// or what is wrong with it.
pub(super) fn decode<T: ReadStruct>(version: u8, payload: &[u8]) -> Result<T, String> {
    let mut refusal = None;
    let seed = StructSeed::<T> {
        refusal: &mut refusal,
        read: PhantomData,
    };
    versioned::decode_exact_seed(version, payload, seed).map_err(|error| refusal.unwrap_or(error))
}

/// A domain type read from its struct in the record.
pub(super) trait ReadStruct: Sized {
    /// How many fields the struct has in the record.
    const FIELDS: usize;

    /// The value from the struct's fields, read in order.
    fn read<'de, A: SeqAccess<'de>>(fields: &mut Fields<'_, A>) -> Result<Self, A::Error>;
}

/// The fields of a struct being read, and where a refusal's reason is kept.
pub(super) struct Fields<'r, A> {
    access: A,
    read: usize,
    refusal: &'r mut Option<String>,
}

impl<'de, A: SeqAccess<'de>> Fields<'_, A> {
    /// The next field.
    #[inline]
    pub(super) fn next<T: Deserialize<'de>>(&mut self) -> Result<T, A::Error> {
        let value = self.access.next_element();
        self.counted(value, "")
    }

    /// The next field, a code list's number.
    #[inline]
    pub(super) fn next_code<T: CodeList>(&mut self) -> Result<T, A::Error> {
        let index: u32 = self.next()?;
        code(index).map_err(|reason| self.refuse(reason))
    }

    /// The next field, an optional struct of the record, named `name` in a refusal.
    #[inline]
    pub(super) fn next_optional<T: ReadStruct>(
        &mut self,
        name: &str,
    ) -> Result<Option<T>, A::Error> {
        let value = self.access.next_element_seed(OptionSeed(StructSeed {
            refusal: &mut *self.refusal,
            read: PhantomData,
        }));
        self.counted(value, name)
    }

    /// The next field, a list of the record's structs, named `name` in a refusal.
    #[inline]
    pub(super) fn next_list<T: ReadStruct>(&mut self, name: &str) -> Result<Vec<T>, A::Error> {
        let value = self.access.next_element_seed(ListSeed(StructSeed {
            refusal: &mut *self.refusal,
            read: PhantomData,
        }));
        self.counted(value, name)
    }

    /// A field read, counted; a refusal in it is named `name` first.
    #[inline]
    fn counted<T>(&mut self, read: Result<Option<T>, A::Error>, name: &str) -> Result<T, A::Error> {
        match read {
            Ok(Some(value)) => {
                self.read += 1;
                Ok(value)
            }
            Ok(None) => Err(de::Error::invalid_length(self.read, &"a field more")),
            Err(error) => {
                name_refusal(self.refusal, name);
                Err(error)
            }
        }
    }

    /// The deserializer's error for a value refused for `reason`, kept.
    #[cold]
    fn refuse(&mut self, reason: String) -> A::Error {
        *self.refusal = Some(reason);
        de::Error::custom("a value the record's code list does not hold")
    }
}

/// Puts `name` in front of the refusal's reason, if a refusal stopped the read (a shape error
/// has none).
#[cold]
fn name_refusal(refusal: &mut Option<String>, name: &str) {
    if let Some(reason) = refusal.as_mut() {
        reason.insert_str(0, name);
    }
}

/// Reads a struct of the record into `T`.
struct StructSeed<'r, T> {
    refusal: &'r mut Option<String>,
    read: PhantomData<T>,
}

impl<'de, T: ReadStruct> DeserializeSeed<'de> for StructSeed<'_, T> {
    type Value = T;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        // Postcard writes a struct as its fields in order, as it writes a tuple.
        deserializer.deserialize_tuple(T::FIELDS, self)
    }
}

impl<'de, T: ReadStruct> Visitor<'de> for StructSeed<'_, T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a record struct of {} fields", T::FIELDS)
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, access: A) -> Result<T, A::Error> {
        T::read(&mut Fields {
            access,
            read: 0,
            refusal: self.refusal,
        })
    }
}

/// Reads an optional struct of the record into `T`.
struct OptionSeed<'r, T>(StructSeed<'r, T>);

impl<'de, T: ReadStruct> DeserializeSeed<'de> for OptionSeed<'_, T> {
    type Value = Option<T>;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, T: ReadStruct> Visitor<'de> for OptionSeed<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an optional record struct")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    #[inline]
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        self.0.deserialize(deserializer).map(Some)
    }
}

/// Reads a list of the record's structs into `T`s.
struct ListSeed<'r, T>(StructSeed<'r, T>);

impl<'de, T: ReadStruct> DeserializeSeed<'de> for ListSeed<'_, T> {
    type Value = Vec<T>;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<T>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: ReadStruct> Visitor<'de> for ListSeed<'_, T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of record structs")
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Vec<T>, A::Error> {
        let refusal = self.0.refusal;
        // A hint past any list a record holds is damage's: never reserve on its word.
        let mut elements = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
        loop {
            let seed = StructSeed {
                refusal: &mut *refusal,
                read: PhantomData,
            };
            match access.next_element_seed(seed) {
                Ok(Some(element)) => elements.push(element),
                Ok(None) => return Ok(elements),
                Err(error) => {
                    if refusal.is_some() {
                        name_refusal(refusal, &format!("[{}]: ", elements.len()));
                    }
                    return Err(error);
                }
            }
        }
    }
}
