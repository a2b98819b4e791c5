"""Intel's Arc discrete GPUs by PCI device id (Alchemist DG2, Battlemage BMG): the one copy.

Vendored here, in the agent's package, because the agent imports nothing of saf and ships as a
zipapp of this package; the operator's side (saf.recipe.facts.intel, reading `clinfo -l`)
imports it as saf.agents.arc_ids. Data only, Python 3.9.
"""

ARC_IDS = {
    0x56A0: "Arc A770", 0x56A1: "Arc A750", 0x56A2: "Arc A580", 0x56A5: "Arc A380",
    0x56A6: "Arc A310", 0x5690: "Arc A770M", 0x5691: "Arc A730M", 0x5692: "Arc A550M",
    0x5693: "Arc A370M", 0x5694: "Arc A350M", 0x56B0: "Arc Pro A30M", 0x56B2: "Arc Pro A60M",
    0x56B3: "Arc Pro A60", 0x56C0: "Data Center GPU Flex 170", 0x56C1: "Data Center GPU Flex 140",
    0xE20B: "Arc B580", 0xE20C: "Arc B570", 0xE211: "Arc Pro B60", 0xE212: "Arc Pro B50",
}
