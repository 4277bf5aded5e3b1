//! Messages generated from the .proto files in `proto/` (see build.rs).

include!(concat!(env!("OUT_DIR"), "/proto/mod.rs"));
