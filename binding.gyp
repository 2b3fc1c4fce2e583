{
  "targets": [
    {
      "target_name": "nvml-sim",
      "type": "shared_library",
      "product_name": "libnvidia-ml-sim",
      "product_extension": "so.1",
      "sources": [
        "native/nvml-sim/sim.c",
        "native/nvml-sim/presets.c",
        "native/nvml-sim/state.c",
        "native/nvml-sim/api-device.c",
        "native/nvml-sim/api-mig.c",
        "native/nvml-sim/api-events.c",
        "native/nvml-sim/tsim.c",
        "native/nvml-sim/layout.c"
      ],
      "include_dirs": ["native/nvml-sim/include"],
      "cflags!": ["-fno-exceptions"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-fvisibility=hidden", "-O2"],
      "ldflags": ["-Wl,-soname,libnvidia-ml.so.1"],
      "libraries": ["-lpthread", "-lm"],
      "conditions": [["OS!='linux'", {"type": "none"}]]
    }
  ]
}
