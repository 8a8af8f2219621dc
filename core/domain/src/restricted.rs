//! A restricted patient's practice, where it stands as an organisation in another record (who
//! updated or recorded a Summary Care Record, who referred, between which practices a GP2GP
//! transfer runs), reads [`WITHHELD`] to anyone but a user of that practice. The shard decides
//! when (`spine-core`'s `shard/restricted.rs`); the records withhold with [`withhold`].

use crate::pds::values::OdsCode;

/// What a withheld organisation reads: not an ODS code any organisation has (ODS codes are at
/// most 8 characters in use; this is 10).
pub const WITHHELD: &str = "RESTRICTED";

/// The code a withheld organisation reads.
pub fn withheld() -> OdsCode {
    WITHHELD.parse().expect("RESTRICTED is a well-formed code")
}

/// Replaces `code` if it is the withheld `practice`.
pub fn withhold(code: &mut OdsCode, practice: &OdsCode) {
    if code == practice {
        *code = withheld();
    }
}
