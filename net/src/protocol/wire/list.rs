//! A list field of the request schema, without a list built twice: a client's encoding writes
//! each domain element in its wire form as it goes, and the server's decoding keeps the wire
//! values until they are converted.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::invalid_field::Checked;
use super::invalid_field::each;

/// `Vec<R>` on the wire: the domain's `D`s as a client encodes them, or the `R`s decoded.
pub(super) enum List<'a, D, R> {
    /// The domain's elements, each encoded as `R::from(&element)`.
    Domain(&'a [D]),
    /// The elements as decoded.
    Wire(Vec<R>),
}

impl<'a, D, R> List<'a, D, R> {
    /// The elements in the domain's types, each converted by `convert`; a refusal names the
    /// list `name` and the element's index.
    pub(super) fn into_domain(
        self,
        name: &str,
        convert: impl FnMut(R) -> Checked<D>,
    ) -> Checked<Vec<D>>
    where
        D: Clone,
    {
        match self {
            Self::Domain(elements) => Ok(elements.to_vec()),
            Self::Wire(elements) => each(elements, name, convert),
        }
    }
}

impl<'a, D, R: From<&'a D> + Serialize> Serialize for List<'a, D, R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Domain(elements) => serializer.collect_seq(elements.iter().map(R::from)),
            Self::Wire(elements) => elements.serialize(serializer),
        }
    }
}

impl<'de, D, R: Deserialize<'de>> Deserialize<'de> for List<'_, D, R> {
    fn deserialize<De: Deserializer<'de>>(deserializer: De) -> Result<Self, De::Error> {
        Vec::deserialize(deserializer).map(Self::Wire)
    }
}

impl<D: fmt::Debug, R: fmt::Debug> fmt::Debug for List<'_, D, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(elements) => f.debug_tuple("Domain").field(elements).finish(),
            Self::Wire(elements) => f.debug_tuple("Wire").field(elements).finish(),
        }
    }
}

impl<D, R: Clone> Clone for List<'_, D, R> {
    fn clone(&self) -> Self {
        match self {
            Self::Domain(elements) => Self::Domain(elements),
            Self::Wire(elements) => Self::Wire(elements.clone()),
        }
    }
}
