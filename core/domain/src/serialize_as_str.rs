//! Serialising a validated text type as its text.
//!
//! `#[serde(into = "String")]` clones the value into a `String` each time it is serialised: a
//! patient's postcode and practice code were copied that way every time a record or a response
//! was encoded. The text is written from the value instead; the bytes are the same.

/// Implements `Serialize` for each type as the string its `as_str` gives, and `AsRef<str>` (a
/// message schema borrows the text).
macro_rules! serialize_as_str {
    ($($type:ty),+ $(,)?) => {$(
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl AsRef<str> for $type {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    )+};
}

pub(crate) use serialize_as_str;

#[cfg(test)]
mod tests {
    use crate::eps::prescription_id::PrescriptionId;
    use crate::pds::values::{OdsCode, Postcode};

    /// The same bytes as the `String` each type used to be serialised through, in the log's
    /// and the wire's encoding (postcard) and in JSON; and they read back.
    fn serialised_as_its_text<T>(value: T, text: &str)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let postcard = postcard::to_allocvec(&value).expect("serialises");
        assert_eq!(postcard, postcard::to_allocvec(text).expect("serialises"));
        assert_eq!(postcard::from_bytes::<T>(&postcard), Ok(value));
        let json = serde_json::to_string(&text).expect("serialises");
        let value: T = serde_json::from_str(&json).expect("reads back");
        assert_eq!(serde_json::to_string(&value).expect("serialises"), json);
    }

    #[test]
    fn text_types_serialise_as_their_text() {
        serialised_as_its_text::<Postcode>("ls1 4hr".parse().expect("a postcode"), "LS1 4HR");
        serialised_as_its_text::<OdsCode>("A81001".parse().expect("a code"), "A81001");
        let practice = "A12BC".parse().expect("a code");
        let id = PrescriptionId::new(0xABCDEF, &practice, 1).expect("an id");
        let text = id.to_string();
        serialised_as_its_text(id, &text);
    }
}
