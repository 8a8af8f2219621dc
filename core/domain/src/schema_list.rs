//! A list field of a schema of our own over the domain's elements (the request schema of
//! `spine/1`, the log's record schema), without a list built twice: encoding writes each
//! domain element in the schema's form as it goes, and decoding keeps the schema's values
//! until they are converted.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `Vec<R>` in a schema: the domain's `D`s as they are encoded, or the `R`s decoded.
pub enum List<'a, D, R> {
    /// The domain's elements, each encoded as `R::from(&element)`.
    Domain(&'a [D]),
    /// The elements as decoded.
    Schema(Vec<R>),
}

impl<'a, D, R> List<'a, D, R> {
    /// The elements in the domain's types, each converted by `convert` with its index (for
    /// naming where a conversion failed).
    pub fn convert_each<E>(
        self,
        mut convert: impl FnMut(usize, R) -> Result<D, E>,
    ) -> Result<Vec<D>, E>
    where
        D: Clone,
    {
        match self {
            Self::Domain(elements) => Ok(elements.to_vec()),
            Self::Schema(elements) => elements
                .into_iter()
                .enumerate()
                .map(|(index, element)| convert(index, element))
                .collect(),
        }
    }
}

impl<'a, D, R: From<&'a D> + Serialize> Serialize for List<'a, D, R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Domain(elements) => serializer.collect_seq(elements.iter().map(R::from)),
            Self::Schema(elements) => elements.serialize(serializer),
        }
    }
}

impl<'de, D, R: Deserialize<'de>> Deserialize<'de> for List<'_, D, R> {
    fn deserialize<De: Deserializer<'de>>(deserializer: De) -> Result<Self, De::Error> {
        Vec::deserialize(deserializer).map(Self::Schema)
    }
}

impl<D: fmt::Debug, R: fmt::Debug> fmt::Debug for List<'_, D, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(elements) => f.debug_tuple("Domain").field(elements).finish(),
            Self::Schema(elements) => f.debug_tuple("Schema").field(elements).finish(),
        }
    }
}

impl<D, R: Clone> Clone for List<'_, D, R> {
    fn clone(&self) -> Self {
        match self {
            Self::Domain(elements) => Self::Domain(elements),
            Self::Schema(elements) => Self::Schema(elements.clone()),
        }
    }
}
