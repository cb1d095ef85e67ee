"""The libvirt provider: worker VMs as libvirt domains on one host (`options.py`: its
`[[cloud]]` keys; `driver.py`: the only module importing libvirt; `seed.py`: the NoCloud
seed image)."""
