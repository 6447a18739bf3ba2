"""The allocator's parts, by responsibility (`build/allocate.py` puts them together):

- `free`: a bus's taken addresses and, per scanned range, the values still free;
- `state`: the machine placed so far (buses, devices, the indexes over them) → the tree;
- `ids`: the ids the compiler gives the devices it adds (also what `extract` recognises);
- `unique`: props declared `unique`, checked and numbered;
- `ports`: the PCI hot-plug rule: root ports, overflow bridges, spare ports and slots.
"""
