//! `NhsNumber` against the reference implementation's behavioural test vectors
//! (`tests/fixtures/nhs_number_cases.json`, see the README beside it for source and licence).

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use serde_json::Value;
use spine_core::pds::nhs_number::check_value;
use spine_core::{NhsNumber, NhsNumberError, Region};

fn vectors(group: &str) -> Vec<Value> {
    let all: Value = serde_json::from_str(include_str!("fixtures/nhs_number_cases.json")).unwrap();
    let cases = all[group]
        .as_array()
        .unwrap_or_else(|| panic!("no group {group}"))
        .clone();
    assert!(!cases.is_empty(), "group {group} is empty");
    cases
}

fn region(name: &str) -> Region {
    match name {
        "SCOTLAND" => Region::Scotland,
        "NORTHERN_IRELAND" => Region::NorthernIreland,
        "ENGLAND_WALES_IOM" => Region::EnglandWalesIsleOfMan,
        "EIRE" => Region::Eire,
        "SYNTHETIC" => Region::Synthetic,
        other if other.starts_with("UNALLOCATED") => Region::Unallocated,
        other => panic!("unknown region {other}"),
    }
}

#[test]
fn check_values() {
    for case in vectors("calculate_checksum") {
        let identifier = case["identifier"].as_str().unwrap();
        let expected = case["checksum"].as_u64().map(|n| n as u8);
        assert_eq!(check_value(identifier), expected, "{case}");
    }
}

#[test]
fn accepted_spellings() {
    for case in vectors("standardise") {
        let parsed = case["input"].as_str().unwrap().parse::<NhsNumber>();
        match case["output"].as_str().unwrap() {
            "" => assert!(parsed.is_err(), "{case}: accepted as {parsed:?}"),
            output => assert_eq!(parsed.unwrap().to_string(), output, "{case}"),
        }
    }
}

#[test]
fn from_integers() {
    for case in vectors("standardise_from_int") {
        let output = case["output"].as_str().unwrap();
        let Some(value) = case["input"].as_u64() else {
            assert_eq!(output, "", "{case}: a negative number is no NHS number");
            continue;
        };
        match NhsNumber::try_from(value) {
            Ok(number) => assert_eq!(number.to_string(), output, "{case}"),
            Err(error) => {
                assert_eq!(output, "", "{case}: rejected with {error}");
                assert!(
                    matches!(error, NhsNumberError::TooLarge { .. }),
                    "{case}: {error}"
                );
            }
        }
    }
}

#[test]
fn validity() {
    for case in vectors("is_valid") {
        let input = case["input"].as_str().unwrap();
        assert_eq!(
            input.parse::<NhsNumber>().is_ok(),
            case["valid"].as_bool().unwrap(),
            "{case}"
        );
    }
    assert_eq!(
        "0113011113".parse::<NhsNumber>(),
        Err(NhsNumberError::ImpossibleChiDate)
    );
}

#[test]
fn validity_for_a_region() {
    for case in vectors("is_valid_for_region") {
        let input = case["input"].as_str().unwrap();
        let wanted = region(case["region"].as_str().unwrap());
        let valid_there = input
            .parse::<NhsNumber>()
            .is_ok_and(|number| number.region() == wanted);
        assert_eq!(valid_there, case["valid"].as_bool().unwrap(), "{case}");
    }
}

#[test]
fn regions() {
    for case in vectors("region_of") {
        let number: NhsNumber = case["number"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            number.region(),
            region(case["region"].as_str().unwrap()),
            "{case}"
        );
    }
}

#[test]
fn range_boundaries() {
    for case in vectors("range_boundaries") {
        let wanted = region(case["range"].as_str().unwrap());
        let (start, end) = (
            case["start"].as_u64().unwrap(),
            case["end"].as_u64().unwrap(),
        );
        assert_eq!(Region::of(start), wanted, "{case}");
        assert_eq!(Region::of(end), wanted, "{case}");
        if wanted != Region::Unallocated {
            assert_ne!(
                Region::of(start - 1),
                wanted,
                "{case}: the range starts at {start}"
            );
            assert_ne!(
                Region::of(end + 1),
                wanted,
                "{case}: the range ends at {end}"
            );
        }
    }
}
