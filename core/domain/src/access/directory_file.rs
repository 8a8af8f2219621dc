//! The directory's file in the data directory (`access.json`), and the demo directory written
//! there on first start so a newcomer has users to act as.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::{Activity, Caller, Directory, DirectoryError, Organisation, RoleProfile, System, User};
use crate::pds::values::OdsCode;

/// The directory file's name in the data directory.
pub const FILE_NAME: &str = "access.json";
/// Largest directory file read, in bytes.
pub const FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Why the directory file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryFileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The file is larger than [`FILE_BYTES_MAX`].
    #[error("{path}: {size} bytes is larger than the {FILE_BYTES_MAX}-byte limit")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The file is not a directory in JSON.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Where and why parsing failed.
        source: serde_json::Error,
    },
    /// The directory contradicts itself.
    #[error("{path}: {source}")]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// The contradiction.
        source: DirectoryError,
    },
}

/// Reads `data_dir/access.json`, writing the demo directory there first if there is none.
pub fn load_or_create(data_dir: &Path) -> Result<Directory, DirectoryFileError> {
    load_or_create_with(data_dir, demo)
}

/// Reads `data_dir/access.json`, writing `initial()` there first if there is none.
pub fn load_or_create_with(
    data_dir: &Path,
    initial: impl FnOnce() -> Directory,
) -> Result<Directory, DirectoryFileError> {
    if !data_dir.join(FILE_NAME).exists() {
        save(data_dir, &initial())?;
    }
    load(data_dir)
}

/// Writes `directory` to `data_dir/access.json` whole: under a temporary name, synced, then
/// renamed, so a crash leaves the old file or the new one.
pub fn save(data_dir: &Path, directory: &Directory) -> Result<(), DirectoryFileError> {
    let path = data_dir.join(FILE_NAME);
    let json = serde_json::to_vec_pretty(directory).map_err(|source| DirectoryFileError::Json {
        path: path.clone(),
        source,
    })?;
    let temporary = data_dir.join(format!("{FILE_NAME}.tmp"));
    let io = |source| DirectoryFileError::Io {
        path: temporary.clone(),
        source,
    };
    let mut file = fs::File::create(&temporary).map_err(io)?;
    file.write_all(&json).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&temporary, &path).map_err(|source| DirectoryFileError::Io { path, source })
}

/// Reads `data_dir/access.json`.
pub fn load(data_dir: &Path) -> Result<Directory, DirectoryFileError> {
    let path = data_dir.join(FILE_NAME);
    let io = |source| DirectoryFileError::Io {
        path: path.clone(),
        source,
    };
    let size = fs::metadata(&path).map_err(io)?.len();
    if size > FILE_BYTES_MAX {
        return Err(DirectoryFileError::TooLarge { path, size });
    }
    let bytes = fs::read(&path).map_err(io)?;
    let mut directory: Directory =
        serde_json::from_slice(&bytes).map_err(|source| DirectoryFileError::Json {
            path: path.clone(),
            source,
        })?;
    directory
        .index()
        .map_err(|source| DirectoryFileError::Inconsistent { path, source })?;
    Ok(directory)
}

fn ods(code: &str) -> OdsCode {
    code.parse().expect("demo ODS codes are valid")
}

/// Demo user ids, fixed so that demo clients and tests can name them.
pub mod demo_ids {
    use uuid::Uuid;

    /// Dr Asha Patel, GP at Riverside Surgery (every PDS activity; SCR view and update;
    /// prescribing; e-RS referrals; GP2GP).
    pub const GP: Uuid = Uuid::from_u128(0x5350_494e_4500_0000_0000_0000_0000_0001);
    /// Tom Reed, receptionist at Riverside Surgery (retrieve, search, register).
    pub const RECEPTIONIST: Uuid = Uuid::from_u128(0x5350_494e_4500_0000_0000_0000_0000_0002);
    /// Dr Sam Okafor, A&E doctor at City General Hospital (retrieve, search, update; SCR
    /// view).
    pub const HOSPITAL_DOCTOR: Uuid = Uuid::from_u128(0x5350_494e_4500_0000_0000_0000_0000_0003);
    /// Priya Shah, Privacy Officer at City General Hospital (audit only).
    pub const PRIVACY_OFFICER: Uuid = Uuid::from_u128(0x5350_494e_4500_0000_0000_0000_0000_0004);
    /// Lena Novak, pharmacist at High Street Pharmacy, FY001 (dispensing).
    pub const PHARMACIST: Uuid = Uuid::from_u128(0x5350_494e_4500_0000_0000_0000_0000_0005);
    /// Omar Haddad, pharmacist at Station Road Pharmacy, FY002 (dispensing).
    pub const SECOND_PHARMACIST: Uuid = Uuid::from_u128(0x5350_494e_4500_0000_0000_0000_0000_0006);
    /// Ruth Ellis, appointments manager at City General Hospital (publishes e-RS services
    /// and slots).
    pub const APPOINTMENTS_MANAGER: Uuid =
        Uuid::from_u128(0x5350_494e_4500_0000_0000_0000_0000_0007);
    /// Dr Ben Carter, GP at Hillview Medical Centre (retrieve and update; GP2GP).
    pub const SECOND_GP: Uuid = Uuid::from_u128(0x5350_494e_4500_0000_0000_0000_0000_0008);
    /// The demo supplier system's ASID.
    pub const SYSTEM_ASID: u64 = 200_000_000_001;
    /// Riverside Surgery's ODS code: the practice of the GP and the receptionist, and the
    /// demo system's organisation.
    pub const RIVERSIDE: &str = "Y90001";
    /// Hillview Medical Centre's ODS code: the second GP's practice.
    pub const HILLVIEW: &str = "Y90002";
}

/// How a demo user calls: in their (only) role profile, through the demo system. Unknown users
/// get a profile name no one holds, so their requests are refused as they should be.
pub fn demo_caller(user: Uuid) -> Caller {
    let role_profile = match user {
        demo_ids::GP => "gp-riverside",
        demo_ids::RECEPTIONIST => "reception-riverside",
        demo_ids::HOSPITAL_DOCTOR => "ae-city-general",
        demo_ids::PRIVACY_OFFICER => "privacy-city-general",
        demo_ids::PHARMACIST => "pharmacist-high-street",
        demo_ids::SECOND_PHARMACIST => "pharmacist-station-road",
        demo_ids::APPOINTMENTS_MANAGER => "appointments-city-general",
        demo_ids::SECOND_GP => "gp-hillview",
        _ => "not-a-demo-user",
    };
    Caller {
        user,
        role_profile: role_profile.into(),
        organisation: None,
        asid: demo_ids::SYSTEM_ASID,
    }
}

/// A small, realistic directory: two GP practices, a hospital and two pharmacies; a GP, a
/// receptionist, a hospital doctor, a privacy officer, two pharmacists, the hospital's
/// appointments manager and a GP at the second practice; and one supplier
/// system allowed everything.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
pub fn demo() -> Directory {
    use Activity::*;
    let organisations = vec![
        Organisation {
            code: ods(demo_ids::RIVERSIDE),
            name: "Riverside Surgery".into(),
        },
        Organisation {
            code: ods(demo_ids::HILLVIEW),
            name: "Hillview Medical Centre".into(),
        },
        Organisation {
            code: ods("Y9H01"),
            name: "City General Hospital".into(),
        },
        Organisation {
            code: ods("FY001"),
            name: "High Street Pharmacy".into(),
        },
        Organisation {
            code: ods("FY002"),
            name: "Station Road Pharmacy".into(),
        },
    ];
    let profile =
        |id: &str, role: &str, organisation: &str, activities: Vec<Activity>| RoleProfile {
            id: id.into(),
            role: role.into(),
            organisation: ods(organisation),
            activities,
        };
    let user = |id: Uuid, name: &str, role_profiles| User {
        id,
        name: name.into(),
        role_profiles,
    };
    let users = vec![
        user(
            demo_ids::GP,
            "Dr Asha Patel",
            vec![profile(
                "gp-riverside",
                "General Medical Practitioner",
                demo_ids::RIVERSIDE,
                vec![
                    PdsRetrieve,
                    PdsSearch,
                    PdsCreate,
                    PdsUpdate,
                    PdsDeathNotification,
                    ScrView,
                    ScrUpdate,
                    EpsPrescribe,
                    ErsRefer,
                    Gp2gp,
                ],
            )],
        ),
        user(
            demo_ids::RECEPTIONIST,
            "Tom Reed",
            vec![profile(
                "reception-riverside",
                "Receptionist",
                demo_ids::RIVERSIDE,
                vec![PdsRetrieve, PdsSearch, PdsCreate],
            )],
        ),
        user(
            demo_ids::HOSPITAL_DOCTOR,
            "Dr Sam Okafor",
            vec![profile(
                "ae-city-general",
                "Emergency Medicine Consultant",
                "Y9H01",
                vec![
                    PdsRetrieve,
                    PdsSearch,
                    PdsUpdate,
                    PdsDeathNotification,
                    ScrView,
                ],
            )],
        ),
        user(
            demo_ids::PRIVACY_OFFICER,
            "Priya Shah (Privacy Officer)",
            vec![profile(
                "privacy-city-general",
                "Privacy Officer",
                "Y9H01",
                vec![AuditView],
            )],
        ),
        user(
            demo_ids::PHARMACIST,
            "Lena Novak",
            vec![profile(
                "pharmacist-high-street",
                "Pharmacist",
                "FY001",
                vec![PdsRetrieve, EpsDispense],
            )],
        ),
        user(
            demo_ids::SECOND_PHARMACIST,
            "Omar Haddad",
            vec![profile(
                "pharmacist-station-road",
                "Pharmacist",
                "FY002",
                vec![PdsRetrieve, EpsDispense],
            )],
        ),
        user(
            demo_ids::APPOINTMENTS_MANAGER,
            "Ruth Ellis",
            vec![profile(
                "appointments-city-general",
                "Appointments Manager",
                "Y9H01",
                vec![ErsProvide],
            )],
        ),
        user(
            demo_ids::SECOND_GP,
            "Dr Ben Carter",
            vec![profile(
                "gp-hillview",
                "General Medical Practitioner",
                demo_ids::HILLVIEW,
                vec![PdsRetrieve, PdsUpdate, Gp2gp],
            )],
        ),
    ];
    let systems = vec![System {
        asid: demo_ids::SYSTEM_ASID,
        name: "Demo clinical system".into(),
        organisation: ods(demo_ids::RIVERSIDE),
        activities: Activity::ALL.to_vec(),
        certificates: Vec::new(),
    }];
    Directory::new(organisations, users, systems).expect("the demo directory is consistent")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_written_once_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create(dir.path()).expect("created");
        assert_eq!(first, demo());
        let mut edited = first.clone();
        edited.organisations[0].name = "Renamed".into();
        let json = serde_json::to_vec(&edited).expect("json");
        fs::write(dir.path().join(FILE_NAME), json).expect("write");
        let second = load_or_create(dir.path()).expect("read");
        assert_eq!(
            second.organisations[0].name, "Renamed",
            "an existing file is kept"
        );
    }

    #[test]
    fn a_broken_file_gets_a_specific_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(FILE_NAME), b"{\"users\": 3}").expect("write");
        let error = load_or_create(dir.path()).expect_err("not a directory");
        assert!(matches!(error, DirectoryFileError::Json { .. }), "{error}");
        assert!(error.to_string().contains(FILE_NAME), "{error}");
    }
}
