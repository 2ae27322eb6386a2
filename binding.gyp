# The native kernels (native/kernels.c, shared with the WebAssembly build; the AVX512-BF16 GEMM in
# native/bf16.c and the AVX-512 float32 GEMV in native/gemv.c on their thread pool, native/pool.c;
# and the N-API glue with OpenBLAS sgemm in native/tsvene.c), built by `npm install` into
# build/Release/tsvene.node.
{
  # Set on the command line: node-gyp configure -- -Dopenblas_static=true (scripts/prebuild.ts).
  "variables": { "openblas_static%": "false" },
  "targets": [
    {
      "target_name": "tsvene",
      "sources": ["native/tsvene.c", "native/kernels.c", "native/bf16.c", "native/gemv.c", "native/pool.c"],
      # -fopenmp-simd: honour `#pragma omp simd` (vectorised double reductions) without OpenMP's
      # runtime. -fno-trapping-math: lets GCC if-convert the branch-free selects in the exp/tanh
      # code, which it otherwise refuses to vectorise; it only drops FP exception flags, which
      # nothing reads. No -ffast-math: the kernels rely on IEEE NaN/Inf and on evaluation order.
      # -fvisibility=hidden: the kernels' C names stay private to the addon (N-API's entry is exported).
      "cflags": ["-O3", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math", "-fvisibility=hidden"],
      "conditions": [
        [
          "openblas_static=='true'",
          {
            # The prebuilt addon (npm run build:prebuilt): OpenBLAS's archive inside it, found on the
            # linker's path like -lopenblas, its symbols kept private so that no other copy of
            # BLAS in the process can take their place; pthread and libm stay glibc's shared ones.
            "libraries": ["-l:libopenblas.a", "-lpthread", "-lm"],
            "ldflags": ["-Wl,--exclude-libs,libopenblas.a"]
          },
          { "libraries": ["-lopenblas"] }
        ]
      ]
    }
  ]
}
