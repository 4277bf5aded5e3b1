// Generates the runtime-options messages in proto/ with rust-protobuf's pure-Rust parser,
// so building the shim needs no protoc.
fn main() {
    protobuf_codegen::Codegen::new()
        .pure()
        .include("proto")
        .inputs([
            "proto/runtimeoptions.proto",
            "proto/runtimeoptions_v14.proto",
            "proto/bootstrap.proto",
        ])
        .cargo_out_dir("proto")
        .run_from_script();
    println!("cargo:rerun-if-changed=proto");
}
