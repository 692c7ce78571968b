//! How the drivers of this build are registered: `lib.rs` lists each one on
//! one line of [`drivers!`], which makes the `drivers` module: the
//! [`AnyDriver`](crate::drivers::AnyDriver) enum the engine is generic over
//! (one variant per driver, no boxing on the hot path), `with_driver!` to
//! reach the concrete driver, building a driver by the name a plan gives,
//! and every driver's [`Descriptor`](crate::descriptor::Descriptor).

/// Prefixes of the metric names volley records itself, whatever the
/// driver; each driver's own prefix is in its descriptor.
pub const ENGINE_PREFIXES: &[&str] = &[
    "data_",
    "iteration",
    "vus",
    "checks",
    "group_duration",
    "dropped_iterations",
    "interrupted_iterations",
    "target_",
    "recovery_",
    "breaking_",
    "capacity_",
    "monitor_",
];

/// `drivers! { Variant(module::DriverType), ... }`: see the module docs.
macro_rules! drivers {
    ($($variant:ident($module:ident :: $driver:ident)),* $(,)?) => {
        /// The drivers this build knows (listed in `lib.rs`).
        pub mod drivers {
            use $crate::descriptor::Descriptor;
            use $crate::{BuildCtx, ConfigError, Driver};
            use serde::Deserialize as _;
            use std::sync::{Arc, LazyLock};
            use toml::Spanned;
            use toml::de::{DeValue, ValueDeserializer};

            /// The names plans may give, in the order of registration.
            pub const NAMES: &[&str] = &[$(<$crate::$module::$driver as Driver>::NAME),*];

            pub enum AnyDriver {
                $($variant(Arc<$crate::$module::$driver>),)*
            }

            $crate::registry::drivers!(@with_driver ($) $($variant),*);

            static ALL: LazyLock<Vec<Descriptor>> = LazyLock::new(|| {
                vec![$(<$crate::$module::$driver as Driver>::descriptor()),*]
            });

            /// Every driver's descriptor, in the order of registration.
            pub fn descriptors() -> &'static [Descriptor] {
                &ALL
            }

            pub fn descriptor(name: &str) -> Option<&'static Descriptor> {
                ALL.iter().find(|d| d.name == name)
            }

            /// Memory one VU of the driver takes at least.
            pub fn vu_bytes(name: &str) -> u64 {
                $(
                    if name == <$crate::$module::$driver as Driver>::NAME {
                        return <$crate::$module::$driver as Driver>::VU_BYTES;
                    }
                )*
                8_000
            }

            /// The prefix that makes `metric` (or could make it) one of
            /// volley's own metrics: the engine's or a driver's of this build.
            pub fn built_in_prefix(metric: &str) -> Option<&'static str> {
                $crate::registry::ENGINE_PREFIXES
                    .iter()
                    .copied()
                    .chain(ALL.iter().map(|d| d.prefix.as_str()))
                    .find(|p| metric.starts_with(p))
            }

            /// The driver a scenario names, built from its options.
            pub fn build(
                name: &Spanned<String>,
                options: Spanned<DeValue<'_>>,
                ctx: &BuildCtx<'_>,
            ) -> Result<AnyDriver, ConfigError> {
                $(
                    if name.get_ref() == <$crate::$module::$driver as Driver>::NAME {
                        let o = <<$crate::$module::$driver as Driver>::Options>::deserialize(
                            ValueDeserializer::from(options),
                        )?;
                        let d = <$crate::$module::$driver as Driver>::from_plan(o, ctx, name.span())?;
                        return Ok(AnyDriver::$variant(Arc::new(d)));
                    }
                )*
                Err(ConfigError::at(
                    name.span(),
                    format!(
                        "unknown driver {:?}; this build has {}",
                        name.get_ref(),
                        NAMES.join(", ")
                    ),
                ))
            }

            impl AnyDriver {
                pub fn name(&self) -> &'static str {
                    match self {
                        $(AnyDriver::$variant(_) => <$crate::$module::$driver as Driver>::NAME,)*
                    }
                }

                pub fn descriptor(&self) -> &'static Descriptor {
                    descriptor(self.name()).expect("every registered driver has a descriptor")
                }

                pub fn used_feeders(&self) -> &[usize] {
                    match self {
                        $(AnyDriver::$variant(d) => d.used_feeders(),)*
                    }
                }

                /// See [`Driver::tag_values`].
                pub fn tag_values(&self, key: &str) -> Option<Vec<String>> {
                    match self {
                        $(AnyDriver::$variant(d) => d.tag_values(key),)*
                    }
                }

                pub async fn prepare(&self) -> Result<(), String> {
                    match self {
                        $(AnyDriver::$variant(d) => d.prepare().await,)*
                    }
                }
            }
        }
    };
    // `with_driver!(any, d => body)`: run `body` with `d` bound to the
    // concrete `Arc<Driver>` (`$` is passed in to write the inner macro).
    (@with_driver ($d:tt) $($variant:ident),*) => {
        #[macro_export]
        macro_rules! with_driver {
            ($d any:expr, $d x:ident => $d body:expr) => {
                match $d any {
                    $($d crate::drivers::AnyDriver::$variant($d x) => $d body,)*
                }
            };
        }
    };
}

pub(crate) use drivers;
