//! Compiles the gRPC contract in `proto/` into `OUT_DIR` with a vendored `protoc`,
//! so a fresh machine needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free: build scripts are single-threaded; tonic-prost-build reads PROTOC.
    unsafe_set_protoc(&protoc);
    // A file, not the folder: editing a file in place does not change the
    // folder's modification time.
    println!("cargo:rerun-if-changed=../proto/spikecv/v1/spikecv.proto");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&["../proto/spikecv/v1/spikecv.proto"], &["../proto"])?;
    Ok(())
}

#[allow(unsafe_code)]
fn unsafe_set_protoc(path: &std::path::Path) {
    // Edition 2024 marks set_var unsafe because other threads may read the
    // environment; a build script has no other threads at this point.
    unsafe { std::env::set_var("PROTOC", path) };
}
