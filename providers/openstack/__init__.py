"""The OpenStack provider: worker VMs as Nova servers (`options.py`: its `[[cloud]]` keys;
`driver.py`: the only module importing openstacksdk; `clouds_yaml.py`: what is wrong with a
clouds.yaml, said before openstacksdk hides it)."""
