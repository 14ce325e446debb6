"""The domain fact base behind the demo crawl: industrial equipment faults (symptom -> cause -> fix).

One fact base feeds everything the demo needs, so every stage can be measured against ground
truth: the web pages teach *all* facts in many phrasings, the seed manuals and the synthetic
SFT/preference data use only the *train* facts, and the benchmarks are built only from the
*held-out* facts. A model can therefore only answer a benchmark item if it learned the fact
from curated web data (DAPT), never because the item leaked into synthetic data.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

# equipment -> list of "symptom | cause | fix". Written by hand from common maintenance lore so
# that the distractors of a question (the other causes of the same machine) are plausible.
_FAULT_TABLE: dict[str, list[str]] = {
    "centrifugal pump": [
        "excessive vibration | impeller imbalance | rebalance the impeller on a balancing stand",
        "low discharge pressure | a worn wear ring | replace the wear ring and restore the clearance",
        "cavitation noise | insufficient suction head | raise the suction tank level or lower the pump",
        "seal leakage | a cracked mechanical seal face | replace the mechanical seal assembly",
        "motor overload | a clogged impeller | clean the impeller passages",
        "bearing overheating | over-greased bearings | purge the excess grease from the bearing housing",
    ],
    "screw compressor": [
        "high discharge temperature | a blocked oil cooler | clean the oil cooler fins",
        "oil carryover | a saturated separator element | replace the separator element",
        "frequent load cycling | a leaking inlet valve | overhaul the inlet valve",
        "low delivered air | a dirty intake filter | replace the intake filter",
        "rotor knocking | worn rotor bearings | replace the rotor bearings",
        "safety valve opening | a faulty pressure switch | recalibrate the pressure switch",
    ],
    "belt conveyor": [
        "belt mistracking | a misaligned idler | realign the idler frames",
        "belt slippage | low belt tension | adjust the take-up to restore tension",
        "material spillage | worn skirt rubber | replace the skirt rubber",
        "pulley lagging wear | a seized return roller | replace the seized roller",
        "belt edge fraying | a bent structure frame | straighten the conveyor frame",
        "carryback buildup | a worn belt scraper | replace the scraper blade",
    ],
    "induction motor": [
        "humming without starting | an open phase | restore the missing supply phase",
        "overheating windings | a blocked cooling fan cover | clear the fan cover and ducts",
        "tripping on startup | a shorted stator winding | rewind the stator",
        "bearing growl | contaminated grease | flush and regrease the bearings",
        "shaft current pitting | a missing grounding brush | fit a shaft grounding ring",
        "speed drop under load | broken rotor bars | replace the rotor",
    ],
    "steam boiler": [
        "low water alarm | a stuck feed water valve | free and service the feed water valve",
        "black smoke | an incorrect air to fuel ratio | retune the burner combustion",
        "priming and foaming | high dissolved solids | increase the blowdown rate",
        "tube leakage | oxygen pitting | repair the tubes and fix the deaerator",
        "flame failure | a dirty flame scanner | clean the flame scanner lens",
        "pressure fluctuation | a faulty modulating motor | replace the modulating motor",
    ],
    "hydraulic press": [
        "slow ram movement | a worn pump | rebuild the hydraulic pump",
        "jerky cylinder motion | air in the hydraulic fluid | bleed the air from the circuit",
        "oil overheating | a clogged return filter | replace the return filter",
        "pressure loss | a leaking relief valve | reseat the relief valve",
        "ram drifting down | worn piston seals | replace the piston seals",
        "noisy pump | a restricted suction strainer | clean the suction strainer",
    ],
    "gearbox": [
        "gear whine | incorrect backlash | reshim the gear mesh",
        "oil leakage at the shaft | a hardened lip seal | replace the lip seal",
        "pitting on gear teeth | lubricant breakdown | change to the specified gear oil",
        "high oil temperature | an overfilled sump | drain oil to the correct level",
        "knocking under load | a chipped tooth | replace the damaged gear set",
        "axial shaft play | a failed thrust bearing | replace the thrust bearing",
    ],
    "cooling tower": [
        "high return water temperature | fouled fill media | clean or replace the fill media",
        "fan vibration | a loose fan blade | retorque the fan blade clamps",
        "drift loss | damaged drift eliminators | replace the drift eliminators",
        "scale buildup | poor water treatment | adjust the chemical dosing",
        "basin overflow | a stuck float valve | repair the makeup float valve",
        "uneven water distribution | clogged spray nozzles | clean the spray nozzles",
    ],
    "diesel generator": [
        "hard starting | a weak starter battery | charge or replace the battery",
        "white exhaust smoke | a leaking injector | replace the faulty injector",
        "voltage instability | a faulty automatic voltage regulator | replace the voltage regulator",
        "coolant loss | a blown head gasket | replace the head gasket",
        "overspeed shutdown | a sticking governor | service the governor linkage",
        "low oil pressure | a clogged oil filter | change the oil filter",
    ],
    "CNC spindle": [
        "chatter marks | worn spindle bearings | replace the spindle bearings",
        "spindle overheating | a failed chiller | repair the spindle chiller",
        "tool runout | a dirty tool taper | clean the spindle taper",
        "drawbar failure | weak disc springs | replace the drawbar spring stack",
        "encoder fault alarm | a damaged encoder cable | replace the encoder cable",
        "noise at high speed | unbalanced tool holder | balance the tool holder",
    ],
    "air handling unit": [
        "low airflow | a clogged filter bank | replace the filter bank",
        "fan belt squeal | a glazed drive belt | replace the drive belt",
        "water carryover | a plugged condensate drain | clear the condensate drain",
        "coil freezing | low refrigerant charge | repair the leak and recharge",
        "damper not moving | a failed damper actuator | replace the damper actuator",
        "high static pressure | closed fire dampers | reset the fire dampers",
    ],
    "reciprocating compressor": [
        "valve clatter | a broken valve plate | replace the valve plate",
        "blow-by | worn piston rings | replace the piston rings",
        "crankcase knocking | loose connecting rod bearings | replace the rod bearings",
        "high interstage pressure | a leaking second stage valve | repair the second stage valve",
        "excessive oil consumption | worn cylinder liners | hone or replace the cylinder liners",
        "motor stalling | a stuck unloader | free the unloader mechanism",
    ],
}


# Six more faults per machine, so that the held-out facts give a few hundred benchmark items.
for _equipment, _rows in {
    'centrifugal pump': [
        'no flow at startup | an air-bound casing | vent the casing and prime the pump',
        'noisy coupling | a misaligned motor shaft | realign the pump and motor shafts',
        'shaft sleeve scoring | abrasive solids in the liquid | fit a hardened shaft sleeve',
        'pump running backwards | swapped motor leads | swap two motor phase leads',
        'rapid packing wear | an overtightened gland | loosen the gland follower evenly',
        'pressure surges | a sticking check valve | service the discharge check valve',
    ],
    'screw compressor': [
        'high oil consumption | a clogged scavenge line | clear the scavenge line orifice',
        'water in the oil | a failed condensate drain | repair the automatic condensate drain',
        'motor tripping on start | a faulty star delta timer | replace the star delta timer',
        'excessive noise | a worn drive coupling element | replace the coupling element',
        'slow pressure build up | a leaking minimum pressure valve | rebuild the minimum pressure valve',
        'varnish on the rotors | degraded compressor oil | flush the system and refill with fresh oil',
    ],
    'belt conveyor': [
        'idler squeal | dry idler bearings | lubricate or replace the idler bearings',
        'belt splice failure | a poorly vulcanized joint | remake the vulcanized splice',
        'drive pulley slipping when wet | smooth pulley lagging | install ceramic pulley lagging',
        'motor overheating on the conveyor | an overloaded belt | limit the feed rate at the chute',
        'belt sagging between idlers | excessive idler spacing | add intermediate idlers',
        'chute blockage | a sticky wet product | line the chute with low friction liner',
    ],
    'induction motor': [
        'excessive vibration at running speed | a soft foot under the frame | shim the motor feet',
        'insulation resistance falling | moisture in the windings | dry out the windings with a heater',
        'terminal box burning smell | loose cable lugs | retighten the terminal connections',
        'current imbalance | unequal supply voltages | balance the supply transformer taps',
        'slow acceleration | low supply voltage at start | upgrade the feeder cable size',
        'rotor rubbing noise | an eccentric air gap | recenter the rotor in the stator',
    ],
    'steam boiler': [
        'safety valve weeping | a damaged valve seat | lap the safety valve seat',
        'low steam pressure | scale on the fire tubes | descale the fire tubes',
        'water hammer in the header | condensate in the steam lines | install steam traps on the header',
        'high stack temperature | soot on the heating surfaces | brush the tubes clean',
        'feed pump cavitation | hot condensate return | cool the feed tank or raise its level',
        'burner lockout | a blocked oil nozzle | replace the burner nozzle',
    ],
    'hydraulic press': [
        'ram not holding pressure | a leaking check valve | replace the pilot check valve',
        'milky hydraulic oil | water contamination | change the oil and fix the breather',
        'press stalling mid stroke | a sticking directional valve | clean the directional valve spool',
        'hose bursting | exceeded hose pressure rating | fit hoses with the correct rating',
        'excessive cycle time | an incorrect flow control setting | readjust the flow control valve',
        'cylinder rod scoring | a worn rod wiper | replace the rod wiper and polish the rod',
    ],
    'gearbox': [
        'grinding noise at startup | contaminated gear oil | flush and refill the gearbox',
        'breather spitting oil | a blocked breather | replace the gearbox breather',
        'output shaft not turning | a sheared key | fit a new shaft key',
        'foaming oil | mixed oil types | drain and refill with one oil grade',
        'housing cracking | excessive overhung load | add an outboard bearing support',
        'periodic thumping noise | a bent input shaft | straighten or replace the input shaft',
    ],
    'cooling tower': [
        'algae growth in the basin | sunlight on open water | cover the distribution deck',
        'gearbox oil leak on the fan | a worn fan gearbox seal | replace the fan gearbox seal',
        'ice on the air inlet | fan running in freezing weather | reverse the fan for deicing',
        'low water flow to the tower | a clogged basin strainer | clean the basin strainer',
        'corroded structure | low pH circulating water | raise the pH with buffered dosing',
        'foam on the basin surface | surfactant contamination | add antifoam and find the source',
    ],
    'diesel generator': [
        'black exhaust smoke | a clogged air filter | replace the air filter element',
        'engine hunting | air in the fuel system | bleed the fuel lines',
        'high coolant temperature | a slipping fan belt | retension the fan belt',
        'fuel in the lube oil | a failed lift pump diaphragm | replace the fuel lift pump',
        'no output voltage | lost residual magnetism | flash the exciter field',
        'wet stacking | prolonged light load operation | run a load bank test',
    ],
    'CNC spindle': [
        'poor surface finish | a loose drawbar clamp | adjust the drawbar clamping force',
        'spindle stalling in heavy cuts | a slipping spindle belt | retension the spindle belt',
        'coolant in the spindle | a failed labyrinth seal | replace the labyrinth seal',
        'tool release failure | low air pressure | restore the shop air supply',
        'thermal growth errors | an unstable spindle temperature | warm up the spindle before cutting',
        'orientation error | a misadjusted proximity sensor | reposition the orientation sensor',
    ],
    'air handling unit': [
        'musty smell in the ducts | mold on the cooling coil | clean and disinfect the coil',
        'fan not starting | a tripped motor overload | reset the overload and check the current',
        'excess humidity in rooms | an oversized cooling coil | reduce the coil face velocity',
        'noise in the supply duct | a loose turning vane | secure the turning vanes',
        'heating coil not warming | an air locked hot water coil | bleed the heating coil',
        'supply air too warm | a stuck chilled water valve | repair the chilled water valve actuator',
    ],
    'reciprocating compressor': [
        'overheated discharge air | dirty intercooler tubes | clean the intercooler',
        'compressor not unloading | a failed pilot valve | replace the pilot valve',
        'excessive belt wear | misaligned sheaves | align the motor and compressor sheaves',
        'moisture at the outlet | a failed aftercooler drain | repair the aftercooler drain trap',
        'pressure not building | a leaking head gasket | replace the cylinder head gasket',
        'flywheel wobble | a loose flywheel bolt | retorque the flywheel bolts',
    ],
}.items():
    _FAULT_TABLE[_equipment].extend(_rows)

# 7 of 12 faults per machine are held out: 84 facts x 4 question types give 336 MCQ items, of
# which about 70% (by fact) form the test split.
HELDOUT_PER_EQUIPMENT = 7


@dataclass(frozen=True)
class Fault:
    """One fact: on `equipment`, `symptom` is caused by `cause` and corrected by `fix`."""

    fact_id: str
    equipment: str
    symptom: str
    cause: str
    fix: str


@dataclass
class FactBase:
    train: list[Fault] = field(default_factory=list)
    heldout: list[Fault] = field(default_factory=list)

    @property
    def all(self) -> list[Fault]:
        return self.train + self.heldout

    def by_equipment(self, equipment: str) -> list[Fault]:
        return [f for f in self.all if f.equipment == equipment]

    def to_dict(self) -> dict:
        return {"train": [asdict(f) for f in self.train], "heldout": [asdict(f) for f in self.heldout]}

    @classmethod
    def from_dict(cls, d: dict) -> "FactBase":
        return cls(train=[Fault(**f) for f in d["train"]], heldout=[Fault(**f) for f in d["heldout"]])


def build_fact_base(seed: int = 0, heldout_per_equipment: int = HELDOUT_PER_EQUIPMENT) -> FactBase:
    """Split the fault table into train and held-out facts, deterministically from `seed`."""
    rng = random.Random(seed)
    base = FactBase()
    for e_idx, (equipment, rows) in enumerate(_FAULT_TABLE.items()):
        faults = []
        for f_idx, row in enumerate(rows):
            symptom, cause, fix = (part.strip() for part in row.split("|"))
            faults.append(Fault(f"F{e_idx:02d}{f_idx:02d}", equipment, symptom, cause, fix))
        held = set(rng.sample(range(len(faults)), heldout_per_equipment))
        for i, fault in enumerate(faults):
            (base.heldout if i in held else base.train).append(fault)
    return base


def equipment_names() -> list[str]:
    return list(_FAULT_TABLE)


def distractors(fact: Fault, facts: list[Fault], attr: str, k: int, rng: random.Random) -> list[str]:
    """`k` plausible wrong values of `attr` ("cause" or "fix"): first from the same machine, then others."""
    same = [getattr(f, attr) for f in facts if f.equipment == fact.equipment and f.fact_id != fact.fact_id]
    other = [getattr(f, attr) for f in facts if f.equipment != fact.equipment]
    rng.shuffle(same)
    rng.shuffle(other)
    out: list[str] = []
    for value in same + other:
        if value != getattr(fact, attr) and value not in out:
            out.append(value)
        if len(out) == k:
            break
    return out


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]
