{
  "targets": [
    {
      "target_name": "wzp_udp",
      "sources": ["wzp_udp.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
