"""The VM registry (KV `cs-vms`) as services hold and write it: the writes more than one
service makes the same way (`writes`), and records compacted for holding thousands in memory
(`compact`)."""
