//! One macro for every enum whose variants are counters: parse errors,
//! drop reasons, VRRP rejects, admin options. Each gets `ALL` (counter
//! order), `COUNT`, `index()` (its counter's slot) and `name()` (the
//! snake_case label shown in dumps, listings and metrics).
//!
//! A second form puts one wrapping variant first (`Malformed(ParseError)`)
//! whose counters live in the wrapped enum: its `index()` is `None` and its
//! `name()` is the wrapped value's.

/// Declares a counter enum; see the module documentation.
macro_rules! counter_enum {
    (
        $(#[$m:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vm:meta])* $v:ident => $label:literal,)*
        }
    ) => {
        $(#[$m])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vm])* $v,)*
        }
        impl $name {
            /// Every variant, in counter order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            /// How many variants (counters) there are.
            pub const COUNT: usize = $name::ALL.len();
            /// This variant's place in `ALL` (its counter).
            pub const fn index(self) -> usize {
                self as usize
            }
            /// The snake_case counter name.
            pub const fn name(self) -> &'static str {
                match self { $($name::$v => $label,)* }
            }
        }
    };
    (
        $(#[$m:meta])*
        $vis:vis enum $name:ident {
            $(#[$wm:meta])* $w:ident($inner:ty),
            $($(#[$vm:meta])* $v:ident => $label:literal,)*
        }
    ) => {
        $(#[$m])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $(#[$wm])* $w($inner),
            $($(#[$vm])* $v,)*
        }
        impl $name {
            /// The variants besides the wrapping one, in counter order.
            pub const OWN: &'static [$name] = &[$($name::$v,)*];
            /// Their names, in the same order.
            pub const NAMES: &'static [&'static str] = &[$($label,)*];
            /// How many counters of its own the enum has.
            pub const COUNT: usize = $name::OWN.len();
            /// This variant's counter among `OWN`; `None` for the wrapping
            /// variant, whose counters are the wrapped enum's.
            pub const fn index(self) -> Option<usize> {
                #[allow(dead_code)]
                enum Slot { $($v,)* }
                match self {
                    $name::$w(_) => None,
                    $($name::$v => Some(Slot::$v as usize),)*
                }
            }
            /// The snake_case counter name.
            pub const fn name(self) -> &'static str {
                match self {
                    $name::$w(e) => e.name(),
                    $($name::$v => $label,)*
                }
            }
        }
    };
}

pub(crate) use counter_enum;

#[cfg(test)]
mod tests {
    counter_enum! {
        /// Plain form.
        pub enum Plain {
            /// First.
            A => "a",
            B => "b_b",
        }
    }
    counter_enum! {
        /// Wrapping form.
        pub enum Wrap {
            Inner(Plain),
            X => "x",
            Y => "y",
        }
    }

    #[test]
    fn plain_counters_in_order() {
        assert_eq!(Plain::COUNT, 2);
        assert_eq!(Plain::B.index(), 1);
        assert_eq!(Plain::ALL, &[Plain::A, Plain::B]);
        assert_eq!(Plain::B.name(), "b_b");
    }

    #[test]
    fn wrapping_variant_names_through_the_inner_enum() {
        assert_eq!(Wrap::COUNT, 2);
        assert_eq!(Wrap::Inner(Plain::B).index(), None);
        assert_eq!(Wrap::Inner(Plain::B).name(), "b_b");
        assert_eq!(Wrap::Y.index(), Some(1));
        assert_eq!(Wrap::NAMES, &["x", "y"]);
    }
}
