//! Makes the `worker` binaries find libtorch at run time without `LD_LIBRARY_PATH`,
//! and keeps `libtorch_cuda.so` linked so that CUDA devices are visible.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // torch-sys (links = "tch") publishes where it found libtorch.
    let Some(lib_dir) = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from) else {
        return;
    };
    let lib = lib_dir.display();
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // The PyPI wheel's CUDA kernels live in libtorch_cuda.so, which nothing references
    // by symbol; with --as-needed the linker drops it and CUDA looks absent.
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
