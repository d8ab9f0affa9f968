{
  "targets": [
    {
      "target_name": "lowrank_wide",
      "type": "static_library",
      "sources": ["src/gelu.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp", "-std=c++17",
                    "-fno-math-errno", "-fPIC"],
      "cflags_cc!": ["-fno-exceptions"]
    },
    {
      "target_name": "lowrank_native",
      "dependencies": ["lowrank_wide"],
      "sources": [
        "src/addon.cc",
        "src/gemm.cc",
        "src/elementwise.cc",
        "src/reduce.cc",
        "src/layout.cc",
        "src/fused.cc",
        "src/dequant.cc",
        "src/random.cc",
        "src/decode.cc",
        "src/memory.cc",
        "src/adalora.cc",
        "src/attention.cc",
        "src/add_norm.cc",
        "src/adapter.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O3", "-march=native", "-fopenmp", "-std=c++17", "-fno-math-errno"],
      "cflags_cc!": ["-fno-exceptions"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-lopenblas", "-lgomp"]
    }
  ]
}
