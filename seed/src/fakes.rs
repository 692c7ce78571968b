//! Realistic text from the `fake` crate, in the spec's locale.

use crate::rng::Rng;
use fake::Fake;
use fake::locales::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locale {
    En,
    FrFr,
    DeDe,
    ItIt,
    NlNl,
    PtBr,
    PtPt,
    JaJp,
    ZhCn,
    ZhTw,
    ArSa,
    TrTr,
    CyGb,
    FaIr,
}

pub const LOCALES: &str =
    "en, fr_fr, de_de, it_it, nl_nl, pt_br, pt_pt, ja_jp, zh_cn, zh_tw, ar_sa, tr_tr, cy_gb, fa_ir";

impl Locale {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "en" | "en_us" | "en_gb" => Locale::En,
            "fr" | "fr_fr" => Locale::FrFr,
            "de" | "de_de" => Locale::DeDe,
            "it" | "it_it" => Locale::ItIt,
            "nl" | "nl_nl" => Locale::NlNl,
            "pt_br" => Locale::PtBr,
            "pt" | "pt_pt" => Locale::PtPt,
            "ja" | "ja_jp" => Locale::JaJp,
            "zh_cn" => Locale::ZhCn,
            "zh_tw" => Locale::ZhTw,
            "ar" | "ar_sa" => Locale::ArSa,
            "tr" | "tr_tr" => Locale::TrTr,
            "cy" | "cy_gb" => Locale::CyGb,
            "fa" | "fa_ir" => Locale::FaIr,
            _ => return None,
        })
    }
}

/// Text fakers that take a locale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Faker {
    FirstName,
    LastName,
    Name,
    Username,
    Company,
    Street,
    City,
    State,
    Country,
    Zip,
    Phone,
}

macro_rules! by_locale {
    ($loc:expr, $rng:expr, $m:ident :: $f:ident) => {
        match $loc {
            Locale::En => fake::faker::$m::raw::$f(EN).fake_with_rng::<String, _>($rng),
            Locale::FrFr => fake::faker::$m::raw::$f(FR_FR).fake_with_rng::<String, _>($rng),
            Locale::DeDe => fake::faker::$m::raw::$f(DE_DE).fake_with_rng::<String, _>($rng),
            Locale::ItIt => fake::faker::$m::raw::$f(IT_IT).fake_with_rng::<String, _>($rng),
            Locale::NlNl => fake::faker::$m::raw::$f(NL_NL).fake_with_rng::<String, _>($rng),
            Locale::PtBr => fake::faker::$m::raw::$f(PT_BR).fake_with_rng::<String, _>($rng),
            Locale::PtPt => fake::faker::$m::raw::$f(PT_PT).fake_with_rng::<String, _>($rng),
            Locale::JaJp => fake::faker::$m::raw::$f(JA_JP).fake_with_rng::<String, _>($rng),
            Locale::ZhCn => fake::faker::$m::raw::$f(ZH_CN).fake_with_rng::<String, _>($rng),
            Locale::ZhTw => fake::faker::$m::raw::$f(ZH_TW).fake_with_rng::<String, _>($rng),
            Locale::ArSa => fake::faker::$m::raw::$f(AR_SA).fake_with_rng::<String, _>($rng),
            Locale::TrTr => fake::faker::$m::raw::$f(TR_TR).fake_with_rng::<String, _>($rng),
            Locale::CyGb => fake::faker::$m::raw::$f(CY_GB).fake_with_rng::<String, _>($rng),
            Locale::FaIr => fake::faker::$m::raw::$f(FA_IR).fake_with_rng::<String, _>($rng),
        }
    };
}

impl Faker {
    pub fn parse(gen_name: &str) -> Option<Self> {
        Some(match gen_name {
            "first_name" => Faker::FirstName,
            "last_name" => Faker::LastName,
            "name" => Faker::Name,
            "username" => Faker::Username,
            "company" => Faker::Company,
            "street" | "address" => Faker::Street,
            "city" => Faker::City,
            "state" => Faker::State,
            "country" => Faker::Country,
            "zip" | "postcode" => Faker::Zip,
            "phone" => Faker::Phone,
            _ => return None,
        })
    }

    pub fn make(self, loc: Locale, rng: &mut Rng, out: &mut String) {
        let s = match self {
            Faker::FirstName => by_locale!(loc, rng, name::FirstName),
            Faker::LastName => by_locale!(loc, rng, name::LastName),
            Faker::Name => {
                let first = by_locale!(loc, rng, name::FirstName);
                let last = by_locale!(loc, rng, name::LastName);
                out.push_str(&first);
                if !matches!(loc, Locale::JaJp | Locale::ZhCn | Locale::ZhTw) {
                    out.push(' ');
                }
                last
            }
            Faker::Username => by_locale!(loc, rng, internet::Username),
            Faker::Company => by_locale!(loc, rng, company::CompanyName),
            Faker::Street => {
                let n = by_locale!(loc, rng, address::BuildingNumber);
                out.push_str(&n);
                out.push(' ');
                by_locale!(loc, rng, address::StreetName)
            }
            Faker::City => by_locale!(loc, rng, address::CityName),
            Faker::State => by_locale!(loc, rng, address::StateName),
            Faker::Country => by_locale!(loc, rng, address::CountryName),
            Faker::Zip => by_locale!(loc, rng, address::ZipCode),
            Faker::Phone => by_locale!(loc, rng, phone_number::PhoneNumber),
        };
        out.push_str(&s);
    }
}

/// Lorem words (Latin filler: the same in every locale).
pub fn words(rng: &mut Rng, n: usize, out: &mut String) {
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        let w: String = fake::faker::lorem::raw::Word(EN).fake_with_rng(rng);
        out.push_str(&w);
    }
}

pub fn sentence(rng: &mut Rng, n: usize, out: &mut String) {
    let start = out.len();
    words(rng, n.max(1), out);
    if let Some(c) = out[start..].chars().next() {
        let up: String = c.to_uppercase().collect();
        out.replace_range(start..start + c.len_utf8(), &up);
    }
    out.push('.');
}

// Product names as shops show them: "Ergonomic Steel Lamp".
const ADJECTIVES: &[&str] = &[
    "Small",
    "Ergonomic",
    "Rustic",
    "Intelligent",
    "Gorgeous",
    "Incredible",
    "Fantastic",
    "Practical",
    "Sleek",
    "Awesome",
    "Generic",
    "Handcrafted",
    "Handmade",
    "Licensed",
    "Refined",
    "Unbranded",
    "Tasty",
    "Compact",
    "Modern",
    "Classic",
    "Portable",
    "Premium",
    "Vintage",
    "Lightweight",
    "Durable",
];
const MATERIALS: &[&str] = &[
    "Steel",
    "Wooden",
    "Concrete",
    "Plastic",
    "Cotton",
    "Granite",
    "Rubber",
    "Metal",
    "Soft",
    "Fresh",
    "Frozen",
    "Bamboo",
    "Leather",
    "Ceramic",
    "Glass",
    "Wool",
    "Copper",
    "Marble",
    "Linen",
    "Aluminium",
];
const PRODUCTS: &[&str] = &[
    "Chair",
    "Car",
    "Computer",
    "Keyboard",
    "Mouse",
    "Bike",
    "Ball",
    "Gloves",
    "Pants",
    "Shirt",
    "Table",
    "Shoes",
    "Hat",
    "Towels",
    "Soap",
    "Tuna",
    "Chicken",
    "Fish",
    "Cheese",
    "Bacon",
    "Pizza",
    "Salad",
    "Sausages",
    "Chips",
    "Lamp",
    "Kettle",
    "Watch",
    "Backpack",
    "Mug",
    "Desk",
    "Sofa",
    "Headphones",
    "Blender",
    "Bottle",
    "Jacket",
    "Umbrella",
    "Wallet",
    "Notebook",
    "Speaker",
    "Candle",
];

pub fn product(rng: &mut Rng, out: &mut String) {
    out.push_str(ADJECTIVES[rng.below(ADJECTIVES.len() as u64) as usize]);
    out.push(' ');
    out.push_str(MATERIALS[rng.below(MATERIALS.len() as u64) as usize]);
    out.push(' ');
    out.push_str(PRODUCTS[rng.below(PRODUCTS.len() as u64) as usize]);
}

/// "José Núñez" -> "jose.nunez": the local part of an email address.
pub fn email_local(name: &str, out: &mut String) {
    let start = out.len();
    let mut dot = false;
    for c in deunicode::deunicode(name).chars() {
        if c.is_ascii_alphanumeric() {
            if dot && out.len() > start {
                out.push('.');
            }
            dot = false;
            out.push(c.to_ascii_lowercase());
        } else {
            dot = true;
        }
    }
    if out.len() == start {
        out.push_str("user");
    }
}
