//! The code lists of the request schema: each value travels as its number, the domain's
//! (`spine_domain::codes`, the same numbers the log's records use; `net/PROTOCOL.md` lists
//! them). A number the list does not hold is a refused value, answered on its request, not
//! bytes the server cannot read.

pub(super) use spine_domain::codes::CodeList;

use super::InvalidField;
use super::invalid_field::Checked;

/// A code list's value from its number on the wire.
pub(super) trait FromWireIndex: Sized {
    /// The value numbered `index`, or a refusal naming the list and its values.
    fn from_index(index: u32) -> Checked<Self>;
}

impl<T: CodeList> FromWireIndex for T {
    fn from_index(index: u32) -> Checked<Self> {
        T::try_from_index(index).ok_or_else(|| {
            InvalidField::value(
                T::NAME,
                format_args!("{index} is not one of {}", T::listing()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spine_domain::ers::Priority;
    use spine_domain::pds::patient::{
        AddressUse, ContactSystem, ContactUse, DeathNotificationStatus, Gender, NameUse,
    };
    use spine_domain::request::ErrorCode;
    use spine_domain::scr::record::ScrPermission;

    fn round_trips<T: CodeList + PartialEq + std::fmt::Debug>(count: u32) {
        for index in 0..count {
            let value = <T as FromWireIndex>::from_index(index).expect("in the list");
            assert_eq!(value.index(), index, "{value:?}");
        }
        let refused = <T as FromWireIndex>::from_index(count).expect_err("past the list");
        assert_eq!(refused.code, ErrorCode::InvalidValue);
        assert!(
            refused
                .reason
                .starts_with(&format!("{count} is not one of 0 ")),
            "{refused}"
        );
    }

    #[test]
    fn every_index_round_trips_and_the_next_one_is_refused() {
        round_trips::<NameUse>(5);
        round_trips::<Gender>(4);
        round_trips::<DeathNotificationStatus>(2);
        round_trips::<AddressUse>(4);
        round_trips::<ContactSystem>(4);
        round_trips::<ContactUse>(4);
        round_trips::<ScrPermission>(2);
        round_trips::<Priority>(3);
        assert_eq!(
            <Gender as FromWireIndex>::from_index(9)
                .unwrap_err()
                .to_string(),
            "gender: 9 is not one of 0 Male, 1 Female, 2 Other, 3 Unknown"
        );
    }
}
