//! Synthetic patients for tests, benchmarks and the load generator: deterministic from a seed,
//! with NHS numbers from the `9xxxxxxxxx` range (never issued to people), common English names
//! (skewed: a few names are very common), birth dates over a century, plausible postcodes and
//! GP practices, and about one in a hundred records restricted.

use super::nhs_number::{NhsNumber, check_value_of_stem};
use super::patient::{
    Address, AddressUse, ContactPoint, ContactSystem, ContactUse, Gender, HumanName, NameUse,
    Patient, Period,
};
use super::search::{DateRange, SearchQuery};
use super::values::{Date, OdsCode, Postcode};

/// First nine-digit stem of synthetic populations (creates allocate below it by default).
pub const POPULATION_FIRST_STEM: u64 = 950_000_000;

const FAMILY: &[&str] = &[
    "Smith",
    "Jones",
    "Williams",
    "Taylor",
    "Brown",
    "Davies",
    "Evans",
    "Wilson",
    "Thomas",
    "Johnson",
    "Roberts",
    "Robinson",
    "Thompson",
    "Wright",
    "Walker",
    "White",
    "Edwards",
    "Hughes",
    "Green",
    "Hall",
    "Lewis",
    "Harris",
    "Clarke",
    "Patel",
    "Jackson",
    "Wood",
    "Turner",
    "Martin",
    "Cooper",
    "Hill",
    "Ward",
    "Morris",
    "Moore",
    "Clark",
    "Lee",
    "King",
    "Baker",
    "Harrison",
    "Morgan",
    "Allen",
    "James",
    "Scott",
    "Phillips",
    "Watson",
    "Davis",
    "Parker",
    "Price",
    "Bennett",
    "Young",
    "Griffiths",
    "Mitchell",
    "Kelly",
    "Cook",
    "Carter",
    "Richardson",
    "Bailey",
    "Collins",
    "Bell",
    "Shaw",
    "Murphy",
    "Miller",
    "Cox",
    "Richards",
    "Khan",
    "Marshall",
    "Anderson",
    "Simpson",
    "Ellis",
    "Adams",
    "Singh",
    "Begum",
    "Wilkinson",
    "Foster",
    "Chapman",
    "Powell",
    "Webb",
    "Rogers",
    "Gray",
    "Mason",
    "Ali",
    "Hunt",
    "Hussain",
    "Campbell",
    "Matthews",
    "Owen",
    "Palmer",
    "Holmes",
    "Mills",
    "Barnes",
    "Knight",
    "Lloyd",
    "Butler",
    "Russell",
    "Barker",
    "Fisher",
    "Stevens",
    "Jenkins",
    "Murray",
    "Dixon",
    "Harvey",
    "Okafor",
    "Nowak",
    "Kowalski",
    "Ahmed",
    "Chen",
    "Nguyen",
    "Smythe",
    "Thomson",
    "Clarkson",
    "Fletcher",
];
const GIVEN_FEMALE: &[&str] = &[
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Ivy",
    "Lily",
    "Isabella",
    "Rosie",
    "Sophia",
    "Grace",
    "Freya",
    "Emily",
    "Poppy",
    "Ella",
    "Margaret",
    "Susan",
    "Sarah",
    "Patricia",
    "Mary",
    "Elizabeth",
    "Jane",
    "Jayne",
    "Helen",
    "Anne",
    "Ann",
    "Annabel",
    "Catherine",
    "Karen",
    "Julie",
    "Priya",
    "Aisha",
    "Fatima",
    "Zara",
    "Chloe",
    "Hannah",
    "Lucy",
    "Jessica",
    "Ruth",
    "Joan",
];
const GIVEN_MALE: &[&str] = &[
    "Oliver", "George", "Noah", "Arthur", "Harry", "Leo", "Muhammad", "Jack", "Charlie", "Oscar",
    "Jacob", "Henry", "Thomas", "Freddie", "Alfie", "David", "John", "Michael", "Peter", "Paul",
    "James", "Robert", "Richard", "Stephen", "Andrew", "Mark", "Ian", "Alan", "Adam", "Samuel",
    "Daniel", "Joseph", "William", "Edward", "Ahmed", "Ravi", "Kwame", "Tomasz", "Liam", "Ryan",
];
const POST_AREAS: &[&str] = &[
    "LS", "M", "B", "L", "S", "BS", "NE", "NG", "LE", "CV", "SO", "PL", "EX", "BN", "CB", "OX",
    "YO", "HU", "BD", "HD", "WF", "SK", "ST", "DE", "NR", "IP", "CF", "SW", "SE", "N", "E", "W",
];
const STREETS: &[&str] = &[
    "High Street",
    "Station Road",
    "Church Lane",
    "Park Avenue",
    "Mill Lane",
    "Victoria Road",
    "Green Lane",
    "Manor Road",
    "Kings Road",
    "Queens Road",
    "The Crescent",
    "Oak Drive",
];
const TOWNS: &[&str] = &[
    "Leeds",
    "Manchester",
    "Birmingham",
    "Liverpool",
    "Sheffield",
    "Bristol",
    "Newcastle",
    "Nottingham",
    "Leicester",
    "Coventry",
    "Southampton",
    "Plymouth",
    "Exeter",
    "Brighton",
];
/// GP practices in a synthetic population (`Y1xxxx`-style codes).
pub const PRACTICES: u32 = 2_000;

/// A small, fast, deterministic generator (SplitMix64): the same seed gives the same
/// population on every machine and version.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "an empty range");
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// An index into a list of `len`, skewed toward the start (the square of a uniform draw):
    /// the first names are far more common than the last, as in a real population.
    pub fn skewed(&mut self, len: usize) -> usize {
        let uniform = self.below(1 << 20) as f64 / f64::from(1 << 20);
        ((uniform * uniform) * len as f64) as usize
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.skewed(list.len())]
    }
}

/// First nine-digit stem of the `9xxxxxxxxx` range.
const RANGE_FIRST_STEM: u64 = 900_000_000;

/// The NHS numbers of a population, in order: valid numbers from [`POPULATION_FIRST_STEM`] up
/// (45,454,546 of them), then, for a population as large as the nation's, from just below it
/// down, into the stems creates allocate upwards from 900,000,000 (they meet only past about
/// 90.9 million numbers in all; an allocation skips a number in use).
pub fn nhs_numbers() -> impl Iterator<Item = NhsNumber> {
    let upwards = POPULATION_FIRST_STEM..1_000_000_000;
    let downwards = (RANGE_FIRST_STEM..POPULATION_FIRST_STEM).rev();
    upwards.chain(downwards).filter_map(|stem| {
        let check = check_value_of_stem(stem);
        if check == 10 {
            return None; // no number has this stem
        }
        NhsNumber::try_from(stem * 10 + u64::from(check)).ok()
    })
}

/// A synthetic population: an endless, deterministic sequence of patients. Patient `i` depends
/// only on the seed and `i` ([`patient_at`]), so a driver can regenerate any of them.
pub struct Population {
    seed: u64,
    index: u64,
    numbers: Box<dyn Iterator<Item = NhsNumber> + Send>,
}

impl std::fmt::Debug for Population {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Population")
            .field("seed", &self.seed)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Population {
    /// The population of `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            index: 0,
            numbers: Box::new(nhs_numbers()),
        }
    }
}

impl Iterator for Population {
    type Item = Patient;

    fn next(&mut self) -> Option<Patient> {
        let nhs_number = self.numbers.next()?;
        let patient = patient_at(self.seed, self.index, nhs_number);
        self.index += 1;
        Some(patient)
    }
}

/// Patient `index` of the population of `seed`, with `nhs_number` (the population's
/// `index`th number).
pub fn patient_at(seed: u64, index: u64, nhs_number: NhsNumber) -> Patient {
    let mut random = SplitMix64::new(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    // Mix once so neighbouring indexes do not start from neighbouring states.
    random.next_u64();
    patient(&mut random, nhs_number)
}

fn date(random: &mut SplitMix64, first_year: u16, years: u16) -> Date {
    loop {
        let year = first_year + random.below(u64::from(years)) as u16;
        let month = 1 + random.below(12) as u8;
        let day = 1 + random.below(31) as u8;
        if let Some(date) = Date::new(year, month, day) {
            return date;
        }
    }
}

fn postcode(random: &mut SplitMix64) -> Postcode {
    let area = random.pick(POST_AREAS);
    let district = 1 + random.below(20);
    let sector = random.below(10);
    let unit: String = (0..2)
        .map(|_| char::from(b'A' + random.below(26) as u8))
        .collect();
    format!("{area}{district} {sector}{unit}")
        .parse()
        .expect("synthetic postcodes have a valid shape")
}

/// One synthetic patient with `nhs_number`.
pub fn patient(random: &mut SplitMix64, nhs_number: NhsNumber) -> Patient {
    let gender = if random.below(2) == 0 {
        Gender::Female
    } else {
        Gender::Male
    };
    let given_names = if gender == Gender::Female {
        GIVEN_FEMALE
    } else {
        GIVEN_MALE
    };
    let birth_date = date(random, 1925, 100);
    let family = random.pick(FAMILY).to_owned();
    let mut names = vec![HumanName {
        name_use: NameUse::Usual,
        prefix: None,
        given: vec![random.pick(given_names).to_owned()],
        family,
        suffix: None,
        period: Period::default(),
    }];
    if gender == Gender::Female && random.below(5) == 0 {
        names.push(HumanName {
            name_use: NameUse::Old,
            prefix: None,
            given: names[0].given.clone(),
            family: random.pick(FAMILY).to_owned(),
            suffix: None,
            period: Period::default(),
        });
    }
    let addresses = vec![Address {
        address_use: AddressUse::Home,
        lines: vec![
            format!("{} {}", 1 + random.below(200), random.pick(STREETS)),
            random.pick(TOWNS).to_owned(),
        ],
        postcode: Some(postcode(random)),
        period: Period::default(),
    }];
    let telecom = vec![ContactPoint {
        system: ContactSystem::Phone,
        value: format!("07700 9{:05}", random.below(100_000)),
        contact_use: ContactUse::Mobile,
        period: Period::default(),
    }];
    let practice: OdsCode = format!("Y1{:04}", random.below(u64::from(PRACTICES)))
        .parse()
        .expect("synthetic practice codes are valid");
    Patient {
        nhs_number,
        version: 1,
        names,
        gender,
        birth_date: Some(birth_date),
        deceased: None,
        addresses,
        telecom,
        general_practitioner: Some(practice),
        restricted: random.below(100) == 0,
    }
}

/// The trace a clerk makes for `patient`: family name and date of birth.
pub fn exact_trace(patient: &Patient) -> SearchQuery {
    let mut query = SearchQuery::new();
    query.family = Some(patient.names[0].family.as_str().into());
    query.birth_date = patient.birth_date.map(DateRange::on);
    query
}

/// A fuzzy trace for `patient` after a misheard name: given name, the family name with its last
/// letter doubled (it sounds the same), date of birth.
pub fn fuzzy_trace(patient: &Patient) -> SearchQuery {
    let mut query = SearchQuery::new();
    let family = &patient.names[0].family;
    let misspelt = format!("{family}{}", family.chars().last().unwrap_or('e'));
    query.family = Some(misspelt.as_str().into());
    query.given = patient.names[0]
        .given
        .first()
        .map(|given| given.as_str().into());
    query.birth_date = patient.birth_date.map(DateRange::on);
    query.fuzzy = true;
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_population_is_valid_deterministic_and_synthetic() {
        let first: Vec<Patient> = Population::new(7).take(500).collect();
        let again: Vec<Patient> = Population::new(7).take(500).collect();
        assert_eq!(first, again);
        for patient in &first {
            patient.validate().expect("valid");
            assert_eq!(
                patient.nhs_number.region(),
                crate::pds::nhs_number::Region::Synthetic
            );
        }
        let restricted = first.iter().filter(|patient| patient.restricted).count();
        assert!((1..=20).contains(&restricted), "{restricted} restricted");
        let other: Vec<Patient> = Population::new(8).take(500).collect();
        assert_ne!(first, other);
        let numbers: Vec<NhsNumber> = nhs_numbers().take(500).collect();
        assert_eq!(patient_at(7, 321, numbers[321]), first[321]);
    }

    #[test]
    fn a_population_larger_than_its_range_goes_on_below_it() {
        let upwards = (POPULATION_FIRST_STEM..1_000_000_000)
            .filter(|&stem| check_value_of_stem(stem) != 10)
            .count();
        let mut numbers = nhs_numbers().skip(upwards - 1);
        let last_up = numbers.next().unwrap().value();
        let first_down = numbers.next().unwrap().value();
        assert!(last_up / 10 >= 999_999_990, "{last_up}");
        assert!(first_down / 10 < POPULATION_FIRST_STEM, "{first_down}");
        assert!(
            first_down / 10 >= POPULATION_FIRST_STEM - 20,
            "{first_down}"
        );
        // The nation's 80 million fit in the 9xxxxxxxxx range, with room left for creates.
        assert!(nhs_numbers().nth(80_000_000).is_some());
    }
}
