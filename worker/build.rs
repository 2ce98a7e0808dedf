//! Makes the `worker` binaries find libtorch at run time without `LD_LIBRARY_PATH`,
//! keeps `libtorch_cuda.so` linked so that CUDA devices are visible, and builds
//! the small C++ shim (`cxx/`) for the switches and the autograd and foreach calls tch lacks.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-changed=cxx/determinism.cpp");
    println!("cargo:rerun-if-changed=cxx/autograd.cpp");
    println!("cargo:rerun-if-changed=cxx/foreach_adam.cpp");
    println!("cargo:rerun-if-changed=cxx/bounded_heap.cpp");
    println!("cargo:rerun-if-changed=cxx/cuda_host.cpp");
    println!("cargo:rerun-if-changed=cxx/jemalloc_cpu.cpp");
    println!("cargo:rerun-if-changed=cxx/lif_fused.cpp");
    println!("cargo:rerun-if-changed=cxx/lif_fused.inc");
    println!("cargo:rerun-if-changed=cxx/op_count.cpp");
    println!("cargo:rerun-if-changed=cxx/versions.cpp");
    // torch-sys (links = "tch") publishes where it found libtorch.
    let Some(lib_dir) = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from) else {
        panic!("torch-sys did not say where libtorch is (DEP_TCH_LIBTORCH_LIB)");
    };
    let lib = lib_dir.display();
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // The PyPI wheel's CUDA kernels live in libtorch_cuda.so, which nothing references
    // by symbol; with --as-needed the linker drops it and CUDA looks absent.
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    // Headers sit beside lib/ in both the wheel and a libtorch download. The
    // wheels of PyTorch 2.x on Linux use the C++11 ABI (torch-sys's default too).
    let root = lib_dir.parent().map(PathBuf::from).unwrap_or_default();
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .file("cxx/determinism.cpp")
        .file("cxx/autograd.cpp")
        .file("cxx/foreach_adam.cpp")
        .file("cxx/bounded_heap.cpp")
        .file("cxx/cuda_host.cpp")
        .file("cxx/jemalloc_cpu.cpp")
        .file("cxx/lif_fused.cpp")
        .file("cxx/op_count.cpp")
        .file("cxx/versions.cpp")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // The fused kernels' C++ form rounds every operation as written, as
        // the CUDA form (compiled with --fmad=false) does.
        .flag("-ffp-contract=off")
        .warnings(false)
        .compile("spikecv_shim");
}
