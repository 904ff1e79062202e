"""sen.host_tools: the sen CLI, node build, flash and provisioning."""
