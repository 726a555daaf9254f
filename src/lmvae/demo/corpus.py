"""A small, synthetic corpus of short explanatory English sentences with semantic-role labels.

Why it exists: the offline demo (and the test suite) must train and probe a language-model VAE
without downloading any data set or hub model.  :mod:`lmvae.demo.backbones` pretrains two tiny
frozen backbones on these sentences, the demo trains a VAE on top of them, and the probes use the
per-word role labels (PropBank style: ``ARG0``, ``V``, ``ARGM-LOC`` ...) and the template family
of each sentence to measure what the latent space encodes (roles, constructions).

Everything is generated from templates and word lists written for this module, so the corpus is
free to redistribute.  Facts are kept consistent (an eagle always lives in the mountains and eats
fish, copper always conducts electricity), which keeps the language learnable by a tiny model.
Sentences are lowercase, 4 to 12 words, without punctuation; every word has exactly one label.

Regenerate the shipped file (byte-identical for the same arguments)::

    python -m lmvae.demo.corpus --out src/lmvae/demo/data/corpus.jsonl --n 3000 --seed 0
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = [
    "ROLE_LABELS",
    "TEMPLATE_FAMILIES",
    "AnnotatedSentence",
    "family_sizes",
    "generate_corpus",
    "load_demo_corpus",
    "read_jsonl",
    "write_jsonl",
]

#: Every label a word can carry: PropBank core arguments, the predicate, modifiers, and ``O``
#: for words outside any argument (auxiliaries such as the "is" of a passive).
ROLE_LABELS: tuple[str, ...] = (
    "ARG0",
    "ARG1",
    "ARG2",
    "ARG3",
    "ARG4",
    "V",
    "ARGM-LOC",
    "ARGM-TMP",
    "ARGM-MNR",
    "ARGM-PRP",
    "ARGM-CAU",
    "ARGM-MOD",
    "ARGM-NEG",
    "ARGM-ADV",
    "ARGM-DIR",
    "ARGM-DIS",
    "O",
)

_ALIASES = {
    "A0": "ARG0",
    "A1": "ARG1",
    "A2": "ARG2",
    "A3": "ARG3",
    "A4": "ARG4",
    "V": "V",
    "LOC": "ARGM-LOC",
    "TMP": "ARGM-TMP",
    "MNR": "ARGM-MNR",
    "PRP": "ARGM-PRP",
    "CAU": "ARGM-CAU",
    "MOD": "ARGM-MOD",
    "NEG": "ARGM-NEG",
    "ADV": "ARGM-ADV",
    "DIR": "ARGM-DIR",
    "DIS": "ARGM-DIS",
    "O": "O",
}

_DATA_FILE = "corpus.jsonl"


@dataclass(frozen=True)
class AnnotatedSentence:
    """One sentence, one role label per whitespace word, and the template family it came from."""

    text: str
    labels: tuple[str, ...]
    template: str

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.text.split()):
            raise ValueError(f"{len(self.labels)} labels for {len(self.text.split())} words")

    @property
    def words(self) -> list[str]:
        """The whitespace tokens of :attr:`text` (aligned with :attr:`labels`)."""
        return self.text.split()


# --------------------------------------------------------------------------------------------
# Small helpers: labelled phrases, articles, verb forms.

Phrase = tuple[tuple[str, str], ...]  # ((word, label), ...)


def _p(markup: str) -> Phrase:
    """Parse ``"fly/V over the mountains/DIR"``: each word takes the label of the next tag."""
    out: list[tuple[str, str]] = []
    pending: list[str] = []
    for tok in markup.split():
        if "/" in tok:
            word, tag = tok.split("/")
            pending.append(word)
            out.extend((w, _ALIASES[tag]) for w in pending)
            pending = []
        else:
            pending.append(tok)
    if pending:
        raise ValueError(f"untagged words at the end of {markup!r}")
    return tuple(out)


def _s(text: str, tag: str) -> Phrase:
    """All words of ``text`` with the one label ``tag`` (an alias such as ``"A0"``)."""
    return tuple((w, _ALIASES[tag]) for w in text.split())


def _a(noun: str) -> str:
    """The noun phrase with its indefinite article ("an owl", "a unicorn")."""
    first = noun.split()[0]
    vowel = first[0] in "aeiou" and not first.startswith(("uni", "use", "euro"))
    return ("an " if vowel else "a ") + noun


def _third(verb: str) -> str:
    """Third person singular present of a base verb."""
    irregular = {"have": "has", "be": "is", "do": "does", "go": "goes"}
    if verb in irregular:
        return irregular[verb]
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in ("a", "e", "i", "o", "u"):
        return verb[:-1] + "ies"
    return verb + "s"


_DOUBLE = {"cut", "dig", "stir", "put", "get", "run", "swim", "hit", "chop", "mop", "trim", "wrap"}


def _gerund(verb: str) -> str:
    """The -ing form of a base verb."""
    if verb in _DOUBLE:
        return verb + verb[-1] + "ing"
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")):
        return verb[:-1] + "ing"
    return verb + "ing"


def _conj(vp: Phrase, singular: bool) -> Phrase:
    """Conjugate the first word of a verb phrase for a singular or plural subject."""
    if not singular:
        return vp
    (w, lab), rest = vp[0], vp[1:]
    return ((_third(w), lab), *rest)


def _rows(table: str) -> list[list[str]]:
    """Split a ``|``-separated table (one row per line, ``#`` lines ignored)."""
    rows = []
    for line in table.strip().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append([c.strip() for c in line.split("|")])
    return rows


# --------------------------------------------------------------------------------------------
# Lexicon.  Animals carry the facts used by several families (habitat, food, movement ...).


@dataclass(frozen=True)
class _Animal:
    name: str
    plural: str
    kind: str
    home: str  # a locative phrase: "in the mountains"
    move: str  # base verb of locomotion
    manners: tuple[str, ...]
    foods: tuple[str, ...]
    size: int  # 1 (tiny) .. 10 (huge)
    cover: str  # what its body is covered with


_ANIMAL_TABLE = """
# name | plural | kind | home | move | manners | foods | size | cover
eagle | eagles | bird | in the mountains | fly | high,fast | fish,rabbits,snakes | 4 | feathers
owl | owls | bird | in the forest | fly | silently,quietly | mice,insects | 3 | feathers
robin | robins | bird | in the garden | hop | quickly,lightly | worms,berries | 2 | feathers
penguin | penguins | bird | on the ice | swim | fast,well | fish,squid | 4 | feathers
duck | ducks | bird | on the pond | swim | slowly,calmly | seeds,plants,insects | 3 | feathers
parrot | parrots | bird | in the jungle | fly | quickly,noisily | fruit,nuts,seeds | 3 | feathers
ostrich | ostriches | bird | on the grassland | run | fast,quickly | plants,seeds | 6 | feathers
crow | crows | bird | in the fields | fly | slowly,low | seeds,insects | 3 | feathers
hummingbird | hummingbirds | bird | in the garden | fly | quickly,fast | nectar | 1 | feathers
swan | swans | bird | on the lake | swim | gracefully,slowly | plants,seeds | 5 | feathers
bat | bats | mammal | in the cave | fly | quickly,silently | insects,fruit | 2 | fur
bear | bears | mammal | in the forest | walk | slowly,heavily | fish,berries,honey | 8 | fur
wolf | wolves | mammal | in the forest | run | fast,quietly | deer,rabbits | 5 | fur
fox | foxes | mammal | in the woods | run | quickly,quietly | mice,rabbits,berries | 4 | fur
deer | deer | mammal | in the forest | run | fast,gracefully | grass,leaves | 6 | fur
rabbit | rabbits | mammal | in the meadow | hop | quickly,fast | grass,clover,carrots | 3 | fur
squirrel | squirrels | mammal | in the park | climb | quickly,easily | nuts,seeds | 3 | fur
mouse | mice | mammal | in the field | run | quickly,quietly | seeds,grain | 2 | fur
lion | lions | mammal | on the savanna | run | fast,quietly | zebras,antelopes | 7 | fur
zebra | zebras | mammal | on the savanna | run | fast,together | grass | 7 | fur
elephant | elephants | mammal | on the savanna | walk | slowly,heavily | grass,leaves | 10 | skin
giraffe | giraffes | mammal | on the savanna | walk | slowly,gracefully | leaves | 9 | fur
camel | camels | mammal | in the desert | walk | slowly,steadily | dry plants,grass | 8 | fur
cheetah | cheetahs | mammal | on the savanna | run | very fast,fast | antelopes,gazelles | 6 | fur
monkey | monkeys | mammal | in the jungle | climb | quickly,easily | fruit,insects,leaves | 4 | fur
horse | horses | mammal | on the farm | run | fast,gracefully | grass,hay,oats | 8 | hair
cow | cows | mammal | on the farm | walk | slowly,calmly | grass,hay | 8 | hair
sheep | sheep | mammal | on the farm | walk | slowly,together | grass,hay | 5 | wool
goat | goats | mammal | in the mountains | climb | easily,carefully | grass,leaves | 5 | hair
pig | pigs | mammal | on the farm | walk | slowly,happily | vegetables,grain,roots | 6 | skin
whale | whales | mammal | in the ocean | swim | slowly,deep | krill,small fish | 10 | skin
dolphin | dolphins | mammal | in the ocean | swim | fast,gracefully | fish,squid | 7 | skin
seal | seals | mammal | on the coast | swim | fast,well | fish,squid | 6 | fur
beaver | beavers | mammal | near the river | swim | well,slowly | bark,leaves | 4 | fur
mole | moles | mammal | under the ground | dig | quickly,slowly | worms,insects | 2 | fur
hedgehog | hedgehogs | mammal | in the garden | walk | slowly,quietly | insects,worms | 2 | spines
shark | sharks | fish | in the ocean | swim | fast,silently | fish,seals | 8 | scales
salmon | salmon | fish | in the river | swim | fast,upstream | insects,small fish | 4 | scales
trout | trout | fish | in the stream | swim | quickly,upstream | insects,worms | 3 | scales
frog | frogs | amphibian | near the pond | hop | quickly,far | insects,flies | 2 | skin
toad | toads | amphibian | in the garden | hop | slowly,clumsily | insects,worms,slugs | 2 | skin
snake | snakes | reptile | in the grass | slide | silently,smoothly | mice,eggs,frogs | 4 | scales
turtle | turtles | reptile | near the pond | crawl | slowly,steadily | plants,insects | 4 | shell
lizard | lizards | reptile | in the desert | run | quickly,fast | insects | 2 | scales
crocodile | crocodiles | reptile | in the river | swim | silently,slowly | fish,zebras | 7 | scales
bee | bees | insect | in the hive | fly | busily,quickly | nectar,pollen | 1 | hair
ant | ants | insect | under the ground | crawl | busily,together | seeds,leaves,sugar | 1 | shell
butterfly | butterflies | insect | in the meadow | fly | gently,lightly | nectar | 1 | scales
grasshopper | grasshoppers | insect | in the meadow | hop | high,far | grass,leaves | 1 | shell
ladybug | ladybugs | insect | in the garden | crawl | slowly,carefully | aphids | 1 | shell
spider | spiders | arachnid | in the garden | crawl | quickly,carefully | insects,flies | 1 | hair
snail | snails | mollusk | in the garden | crawl | slowly,very slowly | leaves,plants | 1 | shell
worm | worms | annelid | in the soil | crawl | slowly,very slowly | dead leaves,soil | 1 | skin
"""

_ANIMALS: tuple[_Animal, ...] = tuple(
    _Animal(
        name=r[0],
        plural=r[1],
        kind=r[2],
        home=r[3],
        move=r[4],
        manners=tuple(r[5].split(",")),
        foods=tuple(r[6].split(",")),
        size=int(r[7]),
        cover=r[8],
    )
    for r in _rows(_ANIMAL_TABLE)
)
_ANIMAL = {a.name: a for a in _ANIMALS}

# What each animal can do (base form verb phrases), and what it cannot.
_ABILITIES = {
    "eagle": ["fly/V over the mountains/DIR", "see/V small animals/A1 from far away/LOC"],
    "owl": ["see/V in the dark/LOC", "turn/V its head/A1 around/DIR"],
    "robin": ["build/V a nest/A1", "find/V worms/A1 in the grass/LOC"],
    "penguin": ["swim/V under the water/LOC", "slide/V on the ice/LOC"],
    "duck": ["swim/V on the water/LOC", "fly/V far/DIR"],
    "parrot": ["copy/V human speech/A1", "crack/V hard nuts/A1"],
    "ostrich": ["run/V very fast/MNR", "kick/V hard/MNR"],
    "crow": ["solve/V simple puzzles/A1", "use/V sticks/A1 as tools/A2"],
    "hummingbird": ["hover/V in the air/LOC", "fly/V backwards/DIR"],
    "swan": ["fly/V long distances/A1", "swim/V on the lake/LOC"],
    "bat": ["fly/V in the dark/LOC", "hear/V very high sounds/A1"],
    "bear": ["climb/V trees/A1", "catch/V fish/A1 in the river/LOC"],
    "wolf": ["hunt/V in a pack/MNR", "smell/V prey/A1 from far away/LOC"],
    "fox": ["hear/V mice/A1 under the snow/LOC", "jump/V very high/DIR"],
    "deer": ["jump/V over fences/DIR", "run/V through the forest/DIR"],
    "rabbit": ["dig/V burrows/A1", "hop/V very fast/MNR"],
    "squirrel": ["climb/V trees/A1", "store/V nuts/A1 for the winter/PRP"],
    "mouse": ["squeeze/V through small holes/DIR", "climb/V walls/A1"],
    "lion": ["hunt/V in a group/MNR", "roar/V loudly/MNR"],
    "zebra": ["run/V from lions/DIR", "hear/V danger/A1 from far away/LOC"],
    "elephant": ["lift/V logs/A1 with its trunk/MNR", "spray/V water/A1 with its trunk/MNR"],
    "giraffe": ["reach/V tall trees/A1", "eat/V leaves/A1 from high branches/A2"],
    "camel": ["walk/V across the desert/DIR", "go/V without water/MNR for days/TMP"],
    "cheetah": ["run/V very fast/MNR", "catch/V fast animals/A1"],
    "monkey": ["swing/V through the trees/DIR", "climb/V tall trees/A1"],
    "horse": ["carry/V people/A1", "pull/V a cart/A1"],
    "cow": ["pull/V a plough/A1", "walk/V for hours/TMP"],
    "sheep": ["climb/V steep hills/A1", "live/V in large flocks/LOC"],
    "goat": ["climb/V steep rocks/A1", "eat/V almost any plant/A1"],
    "pig": ["smell/V food/A1 under the ground/LOC", "dig/V with its nose/MNR"],
    "whale": ["dive/V deep/DIR under the water/LOC", "sing/V long songs/A1"],
    "dolphin": ["jump/V out of the water/DIR", "find/V fish/A1 with sound/MNR"],
    "seal": ["swim/V under the ice/LOC", "hold/V its breath/A1"],
    "beaver": ["build/V dams/A1", "cut/V down/V trees/A1"],
    "mole": ["dig/V tunnels/A1", "find/V worms/A1 in the dark/LOC"],
    "hedgehog": ["roll/V into a ball/A2", "hide/V under leaves/LOC"],
    "shark": ["smell/V blood/A1 in the water/LOC", "swim/V very fast/MNR"],
    "salmon": ["swim/V up the river/DIR", "jump/V up waterfalls/DIR"],
    "trout": ["swim/V against the current/DIR", "catch/V insects/A1"],
    "frog": ["catch/V flies/A1 with its tongue/MNR", "jump/V very far/DIR"],
    "toad": ["hide/V under stones/LOC", "catch/V insects/A1 with its tongue/MNR"],
    "snake": ["swallow/V eggs/A1 whole/MNR", "smell/V with its tongue/MNR"],
    "turtle": ["hide/V inside its shell/LOC", "swim/V in the pond/LOC"],
    "lizard": ["climb/V walls/A1", "lie/V in the sun/LOC"],
    "crocodile": ["hide/V under the water/LOC", "stay/V still/A3 for hours/TMP"],
    "bee": ["make/V honey/A1", "find/V flowers/A1"],
    "ant": ["carry/V heavy loads/A1", "build/V large nests/A1"],
    "butterfly": ["fly/V from flower to flower/DIR", "taste/V with its feet/MNR"],
    "grasshopper": ["jump/V very high/DIR", "make/V music/A1 with its legs/MNR"],
    "ladybug": ["eat/V aphids/A1", "fly/V away/DIR"],
    "spider": ["spin/V a web/A1", "catch/V insects/A1 in its web/LOC"],
    "snail": ["carry/V its shell/A1", "climb/V up walls/DIR"],
    "worm": ["dig/V through the soil/DIR", "eat/V dead leaves/A1"],
}
_CANNOT = {
    "penguin": ["fly/V"],
    "ostrich": ["fly/V"],
    "shark": ["walk/V on land/LOC", "breathe/V air/A1"],
    "salmon": ["walk/V on land/LOC", "breathe/V air/A1"],
    "trout": ["breathe/V air/A1"],
    "whale": ["breathe/V under the water/LOC"],
    "dolphin": ["breathe/V under the water/LOC"],
    "snail": ["run/V fast/MNR"],
    "turtle": ["run/V fast/MNR"],
    "worm": ["see/V colours/A1"],
    "snake": ["walk/V", "hear/V well/MNR"],
    "elephant": ["jump/V"],
    "mole": ["see/V well/MNR"],
    "camel": ["swim/V well/MNR"],
    "cow": ["climb/V trees/A1"],
    "pig": ["fly/V"],
    "bat": ["see/V well/MNR in daylight/TMP"],
}

# Plants: name | plural | kind | where it grows | colour
_PLANT_TABLE = """
oak | oaks | tree | in the forest | green
pine | pines | tree | in the mountains | green
maple | maples | tree | in the park | red
palm | palms | tree | near the beach | green
willow | willows | tree | near the river | green
birch | birches | tree | in the woods | white
rose | roses | flower | in the garden | red
tulip | tulips | flower | in the garden | yellow
daisy | daisies | flower | in the meadow | white
sunflower | sunflowers | flower | in the field | yellow
lily | lilies | flower | near the pond | white
violet | violets | flower | in the shade | purple
cactus | cacti | plant | in the desert | green
fern | ferns | plant | in the forest | green
moss | moss | plant | on wet rocks | green
ivy | ivy | plant | on old walls | green
bamboo | bamboo | grass | in the jungle | green
wheat | wheat | grass | in the field | yellow
rice | rice | grass | in wet fields | green
seaweed | seaweed | plant | in the ocean | brown
"""
_PLANTS = _rows(_PLANT_TABLE)
_PLANT_NEEDS = ["water", "sunlight", "soil", "air", "light", "nutrients", "warmth"]
_ANIMAL_NEEDS = ["water", "food", "air", "sleep", "shelter", "oxygen"]

# Things with a fixed colour: noun | plural ("-" for mass nouns) | colour | kind
_COLOUR_TABLE = """
banana | bananas | yellow | fruit
lemon | lemons | yellow | fruit
apple | apples | red | fruit
cherry | cherries | red | fruit
strawberry | strawberries | red | fruit
grape | grapes | purple | fruit
plum | plums | purple | fruit
lime | limes | green | fruit
pear | pears | green | fruit
orange | oranges | orange | fruit
peach | peaches | orange | fruit
carrot | carrots | orange | vegetable
pumpkin | pumpkins | orange | vegetable
tomato | tomatoes | red | fruit
potato | potatoes | brown | vegetable
pea | peas | green | vegetable
cabbage | cabbages | green | vegetable
cucumber | cucumbers | green | vegetable
eggplant | eggplants | purple | vegetable
onion | onions | white | vegetable
crow | crows | black | bird
swan | swans | white | bird
flamingo | flamingos | pink | bird
canary | canaries | yellow | bird
frog | frogs | green | amphibian
polar bear | polar bears | white | mammal
fox | foxes | red | mammal
grass | - | green | plant
snow | - | white | -
coal | - | black | -
milk | - | white | -
blood | - | red | -
chalk | - | white | -
mud | - | brown | -
soot | - | black | -
copper | - | orange | -
gold | - | yellow | -
the sky | - | blue | -
the sea | - | blue | -
"""
_COLOURED = _rows(_COLOUR_TABLE)

# Tools and vehicles: name | kind | purpose (base verb phrase) | where it is kept
_TOOL_TABLE = """
thermometer | instrument | measure temperature | in the laboratory
ruler | tool | measure length | in the classroom
scale | instrument | measure weight | in the kitchen
clock | instrument | measure time | on the wall
telescope | instrument | look at the stars | in the observatory
microscope | instrument | see tiny things | in the laboratory
compass | instrument | find directions | in the backpack
hammer | tool | drive nails | in the toolbox
saw | tool | cut wood | in the workshop
shovel | tool | dig holes | in the shed
rake | tool | gather leaves | in the shed
broom | tool | sweep the floor | in the closet
bucket | container | carry water | in the barn
lamp | device | give light | on the desk
fan | machine | cool the air | in the bedroom
refrigerator | machine | keep food cold | in the kitchen
oven | machine | bake bread | in the kitchen
stove | machine | cook food | in the kitchen
kettle | container | boil water | in the kitchen
knife | tool | cut food | in the kitchen
spoon | tool | stir soup | in the drawer
cup | container | hold drinks | in the cupboard
pencil | tool | write words | in the classroom
eraser | tool | remove pencil marks | in the classroom
brush | tool | paint pictures | in the studio
needle | tool | sew cloth | in the sewing box
umbrella | device | stay dry | by the door
ladder | tool | reach high places | in the garage
net | tool | catch fish | on the boat
battery | device | store energy | in the drawer
wire | device | carry electricity | in the wall
magnet | device | pick up iron nails | in the classroom
mirror | device | reflect light | in the bathroom
camera | device | take pictures | in the bag
map | tool | find places | in the car
calculator | device | add numbers | in the classroom
key | tool | open locks | in the pocket
sponge | tool | soak up water | in the sink
funnel | tool | pour liquids | in the kitchen
pump | machine | move water | in the well
drill | tool | make holes | in the toolbox
wrench | tool | turn bolts | in the toolbox
plough | tool | turn the soil | on the farm
truck | vehicle | carry heavy loads | in the garage
bus | vehicle | carry people | at the station
tractor | vehicle | pull a plough | in the barn
boat | vehicle | cross the river | at the dock
submarine | vehicle | explore the ocean | at the port
rocket | vehicle | carry astronauts | at the launch pad
bicycle | vehicle | travel short distances | in the garage
flute | instrument | play music | in the music room
drum | instrument | keep the beat | in the music room
"""
_TOOLS = _rows(_TOOL_TABLE)

# Materials: name | kind | conducts electricity | conducts heat | magnetic | floats | objects
_MATERIAL_TABLE = """
iron | metal | y | y | y | n | nail,rod,pan,key,gate
steel | metal | y | y | y | n | spoon,rod,nail,pan,bridge
copper | metal | y | y | n | n | wire,coin,pan,pipe,rod
aluminum | metal | y | y | n | n | can,pan,foil,ladder
silver | metal | y | y | n | n | spoon,ring,coin,cup
gold | metal | y | y | n | n | ring,coin,necklace,crown
tin | metal | y | y | n | n | can,cup,plate
zinc | metal | y | y | n | n | coin,sheet,bucket
brass | metal | y | y | n | n | key,bell,doorknob,trumpet
wood | material | n | n | n | y | spoon,bowl,block,ruler,chair
plastic | material | n | n | n | y | cup,spoon,bowl,ruler,ball
rubber | material | n | n | n | y | ball,glove,boot,tire
cork | material | n | n | n | y | stopper,board,ball
glass | material | n | n | n | n | cup,bowl,bottle,jar,window
wool | material | n | n | n | y | sock,glove,hat,blanket
paper | material | n | n | n | y | cup,plate,bag,boat
stone | material | n | n | n | n | block,bowl,wall,statue
clay | material | n | n | n | n | pot,bowl,cup,brick
"""
_MATERIALS = _rows(_MATERIAL_TABLE)

_OTHER_KINDS = _rows(
    """
mars | planet
venus | planet
jupiter | planet
saturn | planet
neptune | planet
granite | rock
marble | rock
basalt | rock
limestone | rock
sandstone | rock
oxygen | gas
nitrogen | gas
helium | gas
water | liquid
oil | liquid
honey | liquid
"""
)
_KIND_PARENTS = {
    "bird": "animal",
    "mammal": "animal",
    "fish": "animal",
    "insect": "animal",
    "reptile": "animal",
    "amphibian": "animal",
    "tree": "plant",
    "flower": "plant",
    "fruit": "food",
    "vegetable": "food",
    "metal": "material",
    "planet": "space object",
    "tool": "object",
    "vehicle": "machine",
}
_PLURAL_KIND = {
    "fish": "fish",
    "space object": "space objects",
    "grass": "grasses",
    "arachnid": "arachnids",
}


def _kind_plural(kind: str) -> str:
    return _PLURAL_KIND.get(kind, kind + "s")


# --------------------------------------------------------------------------------------------
# Template families.  Each returns every sentence it can make, as labelled phrases.

Family = Callable[[], list[Phrase]]


def _subjects(name: str, plural: str, tag: str) -> list[tuple[Phrase, bool]]:
    """Ways to name an animal as a subject: (phrase, is_singular)."""
    out: list[tuple[Phrase, bool]] = [(_s(_a(name), tag), True), (_s(plural, tag), False)]
    if plural != name:
        out.append((_s("many " + plural, tag), False))
    else:
        out.append((_s("most " + plural, tag), False))
    return out


def _taxonomy() -> list[Phrase]:
    out: list[Phrase] = []
    is_, are = _s("is", "V"), _s("are", "V")
    for a in _ANIMALS:  # "a robin is a kind of bird that lives in the garden"
        one = _s(_a(a.name), "A1")
        out.append(one + is_ + _s(f"a kind of {a.kind} that lives {a.home}", "A2"))
        out.append(one + is_ + _s(f"{_a(a.kind)} that lives {a.home}", "A2"))
        out.append(one + is_ + _s(f"a type of {a.kind}", "A2"))
        if a.plural != a.name:
            out.append(
                _s(a.plural, "A1") + are + _s(f"{_kind_plural(a.kind)} that live {a.home}", "A2")
            )
    for name, plural, kind, where, _colour in _PLANTS:
        one = _s(_a(name) if plural != name else name, "A1")
        out.append(one + is_ + _s(f"a kind of {kind} that grows {where}", "A2"))
        out.append(one + is_ + _s(f"a type of {kind}", "A2"))
        if plural != name:
            out.append(_s(plural, "A1") + are + _s(f"{_kind_plural(kind)} that grow {where}", "A2"))
    for name, plural, _colour, kind in _COLOURED:
        if kind in ("fruit", "vegetable"):
            out.append(_s(_a(name), "A1") + is_ + _s(f"a kind of {kind}", "A2"))
            out.append(_s(_a(name), "A1") + is_ + _s(f"a type of {kind}", "A2"))
            out.append(_s(plural, "A1") + are + _s(f"a kind of {kind}", "A2"))
    for name, kind, purpose, _where in _TOOLS:  # "a hammer is a kind of tool used to drive nails"
        out.append(_s(_a(name), "A1") + is_ + _s(f"a kind of {kind} used to {purpose}", "A2"))
        out.append(_s(_a(name), "A1") + is_ + _s(f"a type of {kind}", "A2"))
    for r in _MATERIALS + _OTHER_KINDS:
        out.append(_s(r[0], "A1") + is_ + _s(f"a kind of {r[1]}", "A2"))
        out.append(_s(r[0], "A1") + is_ + _s(f"a type of {r[1]}", "A2"))
    for kind, parent in _KIND_PARENTS.items():
        out.append(_s(_a(kind), "A1") + is_ + _s(f"a kind of {parent}", "A2"))
        if kind != "fish":
            out.append(_s(_kind_plural(kind), "A1") + are + _s(f"a kind of {parent}", "A2"))
    return out


def _needs() -> list[Phrase]:
    out: list[Phrase] = []
    for a in _ANIMALS:
        for adj in ("", "young ", "wild "):
            goal = "to grow" if adj == "young " else "to survive"
            subjects = [(_s(_a(adj + a.name), "A0"), True), (_s(adj + a.plural, "A0"), False)]
            if not adj:
                subjects.append((_s("every " + a.name, "A0"), True))
            for subj, sing in subjects:
                for need in _ANIMAL_NEEDS:
                    head = subj + _s("needs" if sing else "need", "V") + _s(need, "A1")
                    out.append(head + _s(goal, "PRP"))
                    out.append(head + _s(f"{goal} {a.home}", "PRP"))
    for r in _PLANTS:
        for adj in ("", "young ", "small "):
            if r[1] == r[0]:  # mass noun: "wheat needs water to grow"
                subjects = [(_s(r[0], "A0"), True)] if not adj else []
            else:
                subjects = [(_s(_a(adj + r[0]), "A0"), True), (_s(adj + r[1], "A0"), False)]
            for subj, sing in subjects:
                for need in _PLANT_NEEDS:
                    head = subj + _s("needs" if sing else "need", "V") + _s(need, "A1")
                    out.append(head + _s("to grow", "PRP"))
                    out.append(head + _s(f"to grow {r[3]}", "PRP"))
    machines = [
        ("a car", "fuel", "to run"),
        ("a truck", "fuel", "to run"),
        ("an airplane", "fuel", "to fly"),
        ("a rocket", "fuel", "to fly"),
        ("a lamp", "electricity", "to shine"),
        ("a radio", "electricity", "to work"),
        ("a computer", "electricity", "to work"),
        ("a fire", "oxygen", "to burn"),
        ("a candle", "oxygen", "to burn"),
        ("a sailboat", "wind", "to move"),
        ("a kite", "wind", "to fly"),
        ("a windmill", "wind", "to turn"),
        ("a seed", "water", "to sprout"),
        ("the body", "food", "to make energy"),
        ("a muscle", "exercise", "to grow strong"),
    ]
    for subj, need, goal in machines:
        out.append(_s(subj, "A0") + _s("needs", "V") + _s(need, "A1") + _s(goal, "PRP"))
    return out


def _ability() -> list[Phrase]:
    out: list[Phrase] = []
    for a in _ANIMALS:
        for subj, _sing in _subjects(a.name, a.plural, "A0"):
            for vp in _ABILITIES[a.name]:
                out.append(subj + _s("can", "MOD") + _p(vp))
            for vp in _CANNOT.get(a.name, []):
                out.append(subj + _s("can", "MOD") + _s("not", "NEG") + _p(vp))
        for vp in _ABILITIES[a.name]:
            out.append(_s("every " + a.name, "A0") + _s("can", "MOD") + _p(vp))
    return out


def _habitat() -> list[Phrase]:
    out: list[Phrase] = []
    for a in _ANIMALS:
        home = _s(a.home, "LOC")
        for subj, sing in _subjects(a.name, a.plural, "A0"):
            out.append(subj + _s("lives" if sing else "live", "V") + home)
        out.append(_s("you", "A0") + _s("can", "MOD") + _s("find", "V") + _s(a.plural, "A1") + home)
        out.append(_s(_a(a.name), "A0") + _s("makes", "V") + _s("its home", "A1") + home)
    for r in _PLANTS:
        place = _s(r[3], "LOC")
        out.append(_s(_a(r[0]) if r[1] != r[0] else r[0], "A1") + _s("grows", "V") + place)
        if r[1] != r[0]:
            out.append(_s(r[1], "A1") + _s("grow", "V") + place)
        out.append(_s("you", "A0") + _s("can", "MOD") + _s("find", "V") + _s(r[1], "A1") + place)
    for r in _TOOLS:
        where = _s(r[3], "LOC")
        out.append(_s(_a(r[0]), "A1") + _s("is", "O") + _s("kept", "V") + where)
        out.append(_s("people", "A0") + _s("keep", "V") + _s(_a(r[0]), "A1") + where)
    return out


def _purpose() -> list[Phrase]:
    out: list[Phrase] = []
    for r in _TOOLS:
        name, purpose = r[0], r[2]
        verb, *rest = purpose.split()
        ger = " ".join([_gerund(verb), *rest])
        for det_name in (_a(name), "the " + name):
            obj = _s(det_name, "A1")
            out.append(obj + _s("is", "O") + _s("used", "V") + _s("to " + purpose, "A2"))
            out.append(obj + _s("is", "O") + _s("used", "V") + _s("for " + ger, "A2"))
        out.append(
            _s("people", "A0") + _s("use", "V") + _s(_a(name), "A1") + _s("to " + purpose, "A2")
        )
        out.append(_s("we", "A0") + _s("use", "V") + _s(_a(name), "A1") + _s("to " + purpose, "A2"))
        out.append(
            _s("you", "A0")
            + _s("can", "MOD")
            + _s("use", "V")
            + _s(_a(name), "A1")
            + _s("to " + purpose, "A2")
        )
    return out


def _material() -> list[Phrase]:
    out: list[Phrase] = []
    props = [("electricity", 2), ("heat", 3)]
    for r in _MATERIALS:
        name, objects = r[0], r[6].split(",")
        subjects = [_s(name, "A0")] + [_s(_a(o) + " made of " + name, "A0") for o in objects]
        for subj in subjects:
            for what, col in props:
                if r[col] == "y":
                    out.append(subj + _s("conducts", "V") + _s(what, "A1"))
                else:
                    out.append(
                        subj
                        + _s("does", "O")
                        + _s("not", "NEG")
                        + _s("conduct", "V")
                        + _s(what, "A1")
                    )
            if r[5] == "y":
                out.append(_rel(subj, "A1") + _s("floats", "V") + _s("on water", "LOC"))
            else:
                out.append(_rel(subj, "A1") + _s("sinks", "V") + _s("in water", "LOC"))
        quality = "good" if r[2] == "y" else "poor"
        for what, _col in props:
            out.append(
                _s(name, "A1") + _s("is", "V") + _s(f"{_a(quality)} conductor of {what}", "A2")
            )
        magnet = _s("a magnet", "A0")
        for obj in [_s(name, "A1")] + [_s(_a(o) + " made of " + name, "A1") for o in objects]:
            if r[4] == "y":
                out.append(magnet + _s("attracts", "V") + obj)
                out.append(magnet + _s("can", "MOD") + _s("pick", "V") + _s("up", "V") + obj)
            else:
                out.append(magnet + _s("does", "O") + _s("not", "NEG") + _s("attract", "V") + obj)
    return out


def _rel(phrase: Phrase, tag: str) -> Phrase:
    """Relabel every word of a phrase."""
    return tuple((w, _ALIASES[tag]) for w, _ in phrase)


# Conditions: clause after "if"/"when" ({s} is the subject), subjects, result clause.
_CONDITIONS: list[tuple[str, list[str], str]] = [
    (
        "{s} is heated",
        ["the ice", "an ice cube", "the snow", "the butter", "the wax", "the chocolate"],
        "it/A1 melts/V",
    ),
    (
        "{s} gets very cold",
        ["the water", "the juice", "the milk", "a puddle", "the lake"],
        "it/A1 freezes/V",
    ),
    ("{s} is boiled", ["the water", "the soup", "the milk"], "it/A0 gives/V off/V steam/A1"),
    (
        "{s} is heated",
        ["a metal rod", "a steel bridge", "a copper wire", "an iron rail", "a metal lid"],
        "it/A1 expands/V",
    ),
    (
        "{s} is dropped",
        ["a ball", "an apple", "a stone", "a book", "a pencil", "a spoon"],
        "it/A1 falls/V to the ground/DIR",
    ),
    (
        "{s} is dropped",
        ["a glass cup", "a plate", "an egg", "a mirror", "a vase"],
        "it/A1 breaks/V",
    ),
    ("{s} is lit", ["dry wood", "the paper", "a match", "a candle", "the straw"], "it/A1 burns/V"),
    (
        "{s} is left in the rain",
        ["an iron nail", "an iron gate", "a steel tool", "a bicycle chain"],
        "it/A1 rusts/V",
    ),
    (
        "{s} gets no water",
        ["a plant", "a flower", "a young tree", "a rose", "the grass", "a garden"],
        "it/A1 dries/V out/V",
    ),
    (
        "{s} gets enough sunlight",
        ["a plant", "a flower", "a young tree", "a tomato plant", "the grass"],
        "it/A1 grows/V well/MNR",
    ),
    ("{s} gets no food", ["an animal", "a dog", "a horse", "a bird"], "it/A1 becomes/V weak/A2"),
    ("{s} is filled with helium", ["a balloon", "a toy balloon"], "it/A1 rises/V into the air/DIR"),
    ("{s} is pricked with a pin", ["a balloon", "a bubble", "a toy balloon"], "it/A1 pops/V"),
    (
        "{s} is planted in wet soil",
        ["a seed", "a bean", "an acorn", "a sunflower seed"],
        "it/A1 starts/V to grow/A1",
    ),
    ("{s} is hit", ["a drum", "a bell", "a gong"], "it/A0 makes/V a sound/A1"),
    ("{s} is plucked", ["a string", "a guitar string", "a harp string"], "it/A1 vibrates/V"),
    ("{s} is closed", ["the switch", "the circuit"], "the bulb/A1 lights/V up/V"),
    ("{s} is placed near iron", ["a magnet", "a strong magnet"], "it/A0 attracts/V the iron/A1"),
    ("{s} is pushed", ["a cart", "a toy car", "a swing", "a door"], "it/A1 moves/V"),
    ("{s} is stretched", ["a rubber band", "a spring"], "it/A1 gets/V longer/A2"),
    (
        "{s} is cut",
        ["a tree", "a flower", "a branch"],
        "it/A1 stops/V growing/A1",
    ),
    ("{s} is left in the sun", ["a puddle", "wet clothes", "a wet towel"], "it/A1 dries/V"),
]


def _condition() -> list[Phrase]:
    out: list[Phrase] = []
    for clause, subjects, result in _CONDITIONS:
        for subj in subjects:
            words, res = clause.format(s=subj), _p(result)
            if subj == "wet clothes":  # plural subject
                words = words.replace(" is ", " are ")
                res = tuple((("they" if w == "it" else w), lab) for w, lab in res)
            out.append(_s("if " + words, "ADV") + _s("then", "DIS") + res)
            out.append(_s("if " + words, "ADV") + res)
            out.append(_s("when " + words, "TMP") + res)
    return out


# Causes: cause | effect | effect is plural (y/n) | effect is a clause (y/n)
_CAUSE_TABLE = """
heavy rain | floods | y | n
strong wind | erosion | n | n
friction | heat | n | n
the moon | the tides | y | n
the tilt of the earth | the seasons | y | n
the rotation of the earth | day and night | y | n
lightning | forest fires | y | n
earthquakes | tsunamis | y | n
burning fuel | air pollution | n | n
air pollution | breathing problems | y | n
drought | crop failure | n | n
cutting down forests | habitat loss | n | n
bacteria | disease | n | n
germs | illness | n | n
too much sun | sunburn | n | n
sugar | tooth decay | n | n
storms | power outages | y | n
overgrazing | soil erosion | n | n
vibrations | sound | n | n
pollen | sneezing | n | n
dust | sneezing | n | n
smoke | coughing | n | n
smoking | lung disease | n | n
a lack of sleep | tiredness | n | n
a cold | a runny nose | n | n
ice on the road | accidents | y | n
loud noise | hearing loss | n | n
rising warm air | wind | n | n
melting snow | floods in spring | y | n
rust | damage to metal | n | n
exercise | stronger muscles | y | n
cold weather | frost | n | n
a volcano | ash clouds | y | n
heat | ice to melt | - | y
gravity | objects to fall | - | y
a force | an object to move | - | y
a magnetic field | a compass needle to turn | - | y
a lack of water | plants to wilt | - | y
bacteria | food to spoil | - | y
wind | leaves to move | - | y
cold air | water to freeze | - | y
"""


_PLURAL_CAUSES = {"earthquakes", "storms", "vibrations", "germs", "bacteria"}


def _cause() -> list[Phrase]:
    out: list[Phrase] = []
    for cause, effect, plural, clause in _rows(_CAUSE_TABLE):
        c0, e1 = _s(cause, "A0"), _s(effect, "A1")
        many = cause in _PLURAL_CAUSES
        out.append(c0 + _s("cause" if many else "causes", "V") + e1)
        out.append(c0 + _s("can", "MOD") + _s("cause", "V") + e1)
        out.append(c0 + _s("often", "TMP") + _s("cause" if many else "causes", "V") + e1)
        if clause == "y":
            out.append(
                c0 + _s("make" if many else "makes", "V") + _s(effect.replace(" to ", " ", 1), "A1")
            )
            continue
        out.append(c0 + _s("lead" if many else "leads", "V") + _s("to " + effect, "A2"))
        out.append(
            e1
            + _s("are" if plural == "y" else "is", "O")
            + _s("caused", "V")
            + _s("by " + cause, "A0")
        )
        out.append(
            e1
            + _s("happen" if plural == "y" else "happens", "V")
            + _s("because of " + cause, "CAU")
        )
        out.append(_s("one cause of " + effect, "A1") + _s("is", "V") + _s(cause, "A2"))
        out.append(
            _s(cause, "A1")
            + _s("are" if many else "is", "V")
            + _s("a common cause of " + effect, "A2")
        )
    return out


# Time facts: subject singular | subject plural | verb phrase (base) | time
_TIME_TABLE = """
an owl | owls | hunt/V | at night
a bat | bats | fly/V | at night
a bat | bats | sleep/V | during the day
a bear | bears | sleep/V | in winter
a fox | foxes | hunt/V | at night
a robin | robins | sing/V | in the morning
a squirrel | squirrels | gather/V nuts/A1 | in autumn
a swallow | swallows | fly/V south/DIR | in autumn
a frog | frogs | sleep/V | in winter
a hedgehog | hedgehogs | sleep/V | in winter
a deer | deer | feed/V | at dawn
a bee | bees | collect/V nectar/A1 | in summer
a bee | bees | rest/V | in winter
a rooster | roosters | crow/V | at dawn
a cricket | crickets | chirp/V | at night
a firefly | fireflies | glow/V | at night
a wolf | wolves | howl/V | at night
a mouse | mice | look/V for food/A1 | at night
a turtle | turtles | lay/V eggs/A1 | in summer
a bird | birds | build/V nests/A1 | in spring
a snake | snakes | warm/V up/V | in the morning
a lizard | lizards | rest/V in the sun/LOC | at noon
a cow | cows | eat/V hay/A1 | in winter
a flower | flowers | bloom/V | in spring
a tree | trees | lose/V their leaves/A1 | in autumn
a farmer | farmers | plant/V seeds/A1 | in spring
a farmer | farmers | harvest/V crops/A1 | in autumn
a child | children | go/V to school/DIR | in the morning
a duck | ducks | fly/V south/DIR | in autumn
a cat | cats | hunt/V | at night
a rabbit | rabbits | eat/V | at dusk
a whale | whales | swim/V to warm water/DIR | in winter
a salmon | salmon | swim/V up the river/DIR | in autumn
a goose | geese | fly/V south/DIR | in autumn
a moth | moths | fly/V | at night
an apple tree | apple trees | bear/V fruit/A1 | in autumn
- | leaves | fall/V | in autumn
- | the leaves | change/V colour/A1 | in autumn
the sun | - | rise/V | in the morning
the sun | - | set/V | in the evening
the moon | - | shine/V | at night
- | the stars | appear/V | at night
snow | - | fall/V | in winter
dew | - | form/V | in the morning
ice | - | form/V on the lakes/LOC | in winter
the ground | - | freeze/V | in winter
"""


def _time() -> list[Phrase]:
    out: list[Phrase] = []
    for sing, plural, vp, when in _rows(_TIME_TABLE):
        verb_phrase, tmp = _p(vp), _s(when, "TMP")
        subjects: list[tuple[Phrase, bool]] = []
        if sing != "-":
            subjects.append((_s(sing, "A0"), True))
        if plural != "-":
            subjects.append((_s(plural, "A0"), False))
            if not plural.startswith("the "):
                subjects.append((_s("most " + plural, "A0"), False))
                subjects.append((_s(plural, "A0") + _s("usually", "TMP"), False))
        animal = _ANIMAL.get(sing.split()[-1]) if sing != "-" else None
        for subj, singular in subjects:
            conj = _conj(verb_phrase, singular)
            if singular:  # "a tree loses its leaves"
                conj = tuple(("its" if w == "their" else w, lab) for w, lab in conj)
            out.append(subj + conj + tmp)
            out.append(tmp + subj + conj)
            if (
                animal is not None and "/LOC" not in vp and "/DIR" not in vp
            ):  # "owls hunt at night in the forest"
                out.append(subj + conj + tmp + _s(animal.home, "LOC"))
    return out


# Sources: producer singular | plural | verb (base) | product
_PRODUCER_TABLE = """
a cow | cows | give | milk
a goat | goats | give | milk
a sheep | sheep | give | wool
a hen | hens | lay | eggs
a bee | bees | make | honey
a silkworm | silkworms | spin | silk
a spider | spiders | spin | silk
a plant | plants | make | oxygen
a tree | trees | give | shade
an apple tree | apple trees | produce | apples
a maple tree | maple trees | give | sap
an oyster | oysters | make | pearls
a volcano | volcanoes | produce | ash
a cloud | clouds | bring | rain
a fire | fires | give | heat
a lamp | lamps | give | light
a battery | batteries | store | electricity
a power plant | power plants | produce | electricity
a wind turbine | wind turbines | make | electricity
a solar panel | solar panels | make | electricity
a flower | flowers | make | nectar
"""
# Made from: product | source material
_MADE_FROM = _rows(
    """
paper | wood
glass | sand
bread | flour
flour | wheat
butter | cream
cheese | milk
yogurt | milk
plastic | oil
steel | iron
leather | animal skin
jam | fruit
chocolate | cocoa beans
sugar | sugar cane
bricks | clay
candles | wax
juice | fruit
raisins | grapes
tofu | soybeans
popcorn | corn
charcoal | wood
cloth | cotton
rope | plant fibers
"""
)


def _source() -> list[Phrase]:
    out: list[Phrase] = []
    for sing, plural, verb, product in _rows(_PRODUCER_TABLE):
        prod = _s(product, "A1")
        out.append(_s(sing, "A0") + _s(_third(verb), "V") + prod)
        out.append(_s(plural, "A0") + _s(verb, "V") + prod)
        out.append(_s("we", "A0") + _s("get", "V") + prod + _s("from " + plural, "A2"))
        come = "come" if product.endswith("s") else "comes"
        out.append(prod + _s(come, "V") + _s("from " + plural, "A3"))
        animal = _ANIMAL.get(sing.split()[-1])
        if animal is not None:  # "we get milk from cows on the farm"
            where = _s(animal.home, "LOC")
            out.append(_s("we", "A0") + _s("get", "V") + prod + _s("from " + plural, "A2") + where)
            out.append(_s(plural, "A0") + _s(verb, "V") + prod + where)
        if verb == "give":
            out.append(_s(sing, "A0") + _s("gives", "V") + _s("us", "A2") + prod)
    for giver, gift, recipient in [
        ("the sun", "light", "the earth"),
        ("the sun", "heat", "the earth"),
        ("the sun", "energy", "plants"),
        ("food", "energy", "the body"),
        ("rain", "water", "the plants"),
        ("the soil", "nutrients", "plants"),
        ("the ocean", "water", "the clouds"),
    ]:
        out.append(
            _s(giver, "A0") + _s("gives", "V") + _s(gift, "A1") + _s("to " + recipient, "A2")
        )
        out.append(_s(giver, "A0") + _s("gives", "V") + _s(recipient, "A2") + _s(gift, "A1"))
    for product, source in _MADE_FROM:
        plural = product.endswith("s")
        prod = _s(product, "A1")
        out.append(
            prod + _s("are" if plural else "is", "O") + _s("made", "V") + _s("from " + source, "A2")
        )
        out.append(_s("people", "A0") + _s("make", "V") + prod + _s("from " + source, "A2"))
        out.append(_s("we", "A0") + _s("get", "V") + prod + _s("from " + source, "A2"))
        out.append(
            _s(source, "A1") + _s("is", "O") + _s("used", "V") + _s("to make " + product, "A2")
        )
    return out


def _appearance() -> list[Phrase]:
    out: list[Phrase] = []
    for name, plural, colour, kind in _COLOURED:
        col = _s(colour, "A2")
        if plural == "-":
            out.append(_s(name, "A1") + _s("is", "V") + _s("usually", "TMP") + col)
            out.append(_s("the colour of " + name, "A1") + _s("is", "V") + col)
            continue
        out.append(_s(_a(name), "A1") + _s("is", "V") + _s("usually", "TMP") + col)
        out.append(_s("most " + plural, "A1") + _s("are", "V") + _s(colour + " in colour", "A2"))
        out.append(_s("the colour of " + _a(name), "A1") + _s("is", "V") + col)
        if kind == "fruit":
            out.append(_s(_a("ripe " + name), "A1") + _s("is", "V") + col)
            out.append(
                _s("most " + plural, "A1") + _s("are", "V") + col + _s("when they are ripe", "TMP")
            )
    for r in _PLANTS:
        if r[2] == "flower":
            out.append(_s(_a(r[0]), "A1") + _s("is", "V") + _s(_a(r[4]) + " flower", "A2"))
            out.append(_s("many " + r[1], "A1") + _s("are", "V") + _s(r[4] + " in colour", "A2"))
    covers = {"shell": "a hard shell", "skin": "thick skin", "spines": "sharp spines"}
    for a in _ANIMALS:
        cover = covers.get(a.cover, a.cover)
        if a.name in ("frog", "toad"):
            cover = "smooth wet skin" if a.name == "frog" else "dry bumpy skin"
        cover_pl = "hard shells" if cover == "a hard shell" else cover
        out.append(_s(_a(a.name), "A0") + _s("has", "V") + _s(cover, "A1"))
        out.append(_s(a.plural, "A0") + _s("have", "V") + _s(cover_pl, "A1"))
        out.append(
            _s("the body of " + _a(a.name), "A1")
            + _s("is", "O")
            + _s("covered", "V")
            + _s("with " + cover, "A2")
        )
    for subj, obj in [
        ("a zebra", "black and white stripes"),
        ("a tiger", "orange fur with black stripes"),
        ("a leopard", "yellow fur with dark spots"),
        ("a ladybug", "red wings with black spots"),
        ("a peacock", "long colourful feathers"),
        ("a skunk", "a white stripe on its back"),
    ]:
        out.append(_s(subj, "A0") + _s("has", "V") + _s(obj, "A1"))
    return out


def _manner() -> list[Phrase]:
    out: list[Phrase] = []
    for a in _ANIMALS:
        for manner in a.manners:
            mnr, home = _s(manner, "MNR"), _s(a.home, "LOC")
            for subj, sing in [(_s(_a(a.name), "A0"), True), (_s(a.plural, "A0"), False)]:
                verb = _s(_third(a.move) if sing else a.move, "V")
                out.append(subj + verb + mnr + home)
                out.append(subj + _s("can", "MOD") + _s(a.move, "V") + mnr + home)
    for subj, vp in [
        ("the wind", "blows/V gently/MNR through the trees/DIR"),
        ("a river", "flows/V slowly/MNR to the sea/DIR"),
        ("water", "flows/V downhill/DIR"),
        ("a glacier", "moves/V very slowly/MNR"),
        ("light", "travels/V very fast/MNR"),
        ("sound", "travels/V quickly/MNR through water/DIR"),
        ("the earth", "turns/V slowly/MNR around the sun/DIR"),
        ("a leaf", "falls/V gently/MNR to the ground/DIR"),
        ("a feather", "falls/V slowly/MNR through the air/DIR"),
        ("a stone", "falls/V quickly/MNR to the ground/DIR"),
    ]:
        out.append(_s(subj, "A0" if subj in ("the wind",) else "A1") + _p(vp))
    return out


# State changes: from | to | process (what "it" does) or "-" for growth
_CHANGE_TABLE = """
water | ice | freezes
ice | water | melts
snow | water | melts
water | steam | boils
steam | water | cools
water | water vapor | evaporates
water vapor | clouds | cools
lava | rock | cools
soft clay | hard brick | is baked
cream | butter | is churned
wood | ash | burns
wood | charcoal | is heated
grapes | raisins | dry
plums | prunes | dry
dead leaves | soil | rot
iron | rust | gets wet
a bud | a flower | opens
a flower | a fruit | is pollinated
a caterpillar | a butterfly | -
a tadpole | a frog | -
a seed | a plant | -
an acorn | an oak tree | -
an egg | a chick | -
a puppy | a dog | -
a kitten | a cat | -
a calf | a cow | -
a lamb | a sheep | -
a foal | a horse | -
a chick | a chicken | -
a duckling | a duck | -
a piglet | a pig | -
a fawn | a deer | -
a cub | a bear | -
a child | an adult | -
a larva | an insect | -
"""


def _state_change() -> list[Phrase]:
    out: list[Phrase] = []
    for frm, to, process in _rows(_CHANGE_TABLE):
        plural = frm.split()[-1].endswith("s") and not frm.startswith(("a ", "an "))
        a1, a2 = _s(frm, "A1"), _s(to, "A2")
        if process == "-":
            grows = "grow" if plural else "grows"
            out.append(a1 + _s(grows, "V") + _s("into " + to, "A2"))
            out.append(a1 + _s("slowly", "MNR") + _s(grows, "V") + _s("into " + to, "A2"))
            out.append(a1 + _s("becomes", "V") + a2)
            out.append(a1 + _s("turns", "V") + _s("into " + to, "A2"))
            out.append(_s("over time", "TMP") + a1 + _s("becomes", "V") + a2)
            continue
        turns = "turn" if plural else "turns"
        changes = "change" if plural else "changes"
        pron = "they" if plural else "it"
        proc = process
        if plural:  # "they dry", "they rot"
            proc = {"is": "are"}.get(process.split()[0], process.split()[0]) + process[
                len(process.split()[0]) :
            ]
        out.append(a1 + _s(turns, "V") + _s("into " + to, "A2"))
        out.append(a1 + _s(changes, "V") + _s("into " + to, "A2"))
        out.append(
            a1 + _s(turns, "V") + _s("into " + to, "A2") + _s("when " + pron + " " + proc, "TMP")
        )
        out.append(
            _s("when " + frm + " " + proc, "TMP")
            + _s(pron, "A1")
            + _s(turns, "V")
            + _s("into " + to, "A2")
        )
        out.append(a1 + _s("can", "MOD") + _s("turn", "V") + _s("into " + to, "A2"))
    return out


_SPEED = {
    "cheetah": 10,
    "ostrich": 9,
    "horse": 8,
    "deer": 8,
    "lion": 8,
    "zebra": 8,
    "wolf": 7,
    "rabbit": 7,
    "fox": 7,
    "goat": 5,
    "camel": 5,
    "bear": 5,
    "elephant": 4,
    "squirrel": 4,
    "mouse": 4,
    "lizard": 4,
    "cow": 3,
    "sheep": 3,
    "pig": 3,
    "frog": 3,
    "snake": 3,
    "ant": 2,
    "spider": 2,
    "turtle": 1,
    "snail": 1,
    "worm": 1,
}
_WEIGHT = {
    "gold": 10,
    "silver": 9,
    "copper": 8,
    "iron": 8,
    "steel": 8,
    "brass": 8,
    "tin": 7,
    "zinc": 7,
    "aluminum": 5,
    "stone": 4,
    "glass": 4,
    "clay": 3,
    "rubber": 2,
    "plastic": 2,
    "wood": 1,
    "paper": 1,
    "wool": 1,
    "cork": 0,
}
_HEAT = {
    "the sun": 10,
    "lava": 9,
    "a fire": 8,
    "boiling water": 7,
    "hot soup": 6,
    "warm milk": 4,
    "cold water": 2,
    "snow": 1,
    "ice": 1,
}
_CLIMATE = {
    "the desert": 9,
    "the jungle": 8,
    "summer": 7,
    "spring": 5,
    "autumn": 4,
    "the mountains": 3,
    "winter": 2,
    "the arctic": 0,
}


# Comparisons are made against a few well-known reference points on each scale.
_SIZE_REFS = (("ant", "mouse", "rabbit"), ("horse", "elephant", "whale"))
_SPEED_REFS = (("snail", "turtle"), ("horse", "cheetah"))
_WEIGHT_REFS = (("cork", "wood"), ("iron", "gold"))
_HEAT_REFS = (("ice", "snow"), ("the sun", "a fire"))
_CLIMATE_REFS = (("the arctic", "winter"), ("the desert", "summer"))


def _comparison() -> list[Phrase]:
    out: list[Phrase] = []

    def compare(
        scale: dict[str, int],
        refs: tuple[tuple[str, ...], tuple[str, ...]],
        more: str,
        less: str,
        name: Callable[[str], str],
        plural: Callable[[str], str] | None = None,
        runs: bool = False,
    ) -> None:
        low, high = refs
        for x, vx in scale.items():
            for ref, word, sign in [(r, more, 1) for r in low] + [(r, less, -1) for r in high]:
                if x == ref or sign * (vx - scale[ref]) < 3:
                    continue
                out.append(_s(name(x), "A1") + _s("is", "V") + _s(f"{word} than {name(ref)}", "A2"))
                if plural is not None:
                    out.append(
                        _s(plural(x), "A1")
                        + _s("are", "V")
                        + _s(f"{word} than {plural(ref)}", "A2")
                    )
                if runs and word == "faster":
                    out.append(
                        _s(name(x), "A0") + _s("runs", "V") + _s(f"faster than {name(ref)}", "MNR")
                    )

    sizes = {a.name: a.size for a in _ANIMALS}

    def animal(x: str) -> str:
        return _a(x)

    def animals(x: str) -> str:
        return _ANIMAL[x].plural

    def same(x: str) -> str:
        return x

    compare(sizes, _SIZE_REFS, "bigger", "smaller", animal, animals)
    compare(_SPEED, _SPEED_REFS, "faster", "slower", animal, animals, runs=True)
    compare(_WEIGHT, _WEIGHT_REFS, "heavier", "lighter", same)
    compare(_HEAT, _HEAT_REFS, "hotter", "colder", same)
    compare(_CLIMATE, _CLIMATE_REFS, "hotter", "colder", same)
    return out


def _diet() -> list[Phrase]:
    out: list[Phrase] = []
    hunters = {
        "eagle",
        "owl",
        "wolf",
        "fox",
        "lion",
        "cheetah",
        "shark",
        "snake",
        "crocodile",
        "spider",
    }
    for a in _ANIMALS:
        home = _s(a.home, "LOC")
        for food in a.foods:
            f1 = _s(food, "A1")
            for subj, sing in [(_s(_a(a.name), "A0"), True), (_s(a.plural, "A0"), False)]:
                out.append(subj + _s("eats" if sing else "eat", "V") + f1 + home)
                out.append(
                    subj + _s("feeds" if sing else "feed", "V") + _s("on " + food, "A1") + home
                )
                if a.name in hunters:
                    out.append(subj + _s("hunts" if sing else "hunt", "V") + f1 + home)
            out.append(_s("the food of " + _a(a.name), "A1") + _s("is", "V") + _s(food, "A2"))
    return out


_FAMILIES: dict[str, Family] = {
    "taxonomy": _taxonomy,
    "need": _needs,
    "ability": _ability,
    "habitat": _habitat,
    "purpose": _purpose,
    "material": _material,
    "condition": _condition,
    "cause": _cause,
    "time": _time,
    "source": _source,
    "appearance": _appearance,
    "manner": _manner,
    "state_change": _state_change,
    "comparison": _comparison,
    "diet": _diet,
}

#: The template families, in generation order.
TEMPLATE_FAMILIES: tuple[str, ...] = tuple(_FAMILIES)

MIN_WORDS, MAX_WORDS = 4, 12


def _family_sentences(name: str) -> list[AnnotatedSentence]:
    """Every distinct sentence of one family (first occurrence kept), in a fixed order."""
    seen: set[str] = set()
    out = []
    for phrase in _FAMILIES[name]():
        text = " ".join(w for w, _ in phrase)
        if text in seen or not MIN_WORDS <= len(phrase) <= MAX_WORDS:
            continue
        seen.add(text)
        out.append(AnnotatedSentence(text, tuple(lab for _, lab in phrase), name))
    return out


def family_sizes() -> dict[str, int]:
    """How many distinct sentences each template family can make."""
    return {name: len(_family_sentences(name)) for name in TEMPLATE_FAMILIES}


def generate_corpus(n: int = 3000, seed: int = 0) -> list[AnnotatedSentence]:
    """Draw ``n`` distinct sentences, about ``n / 15`` from each template family, shuffled.

    Deterministic for a given ``(n, seed)`` (uses its own ``random.Random``).  A family that
    cannot fill its share gives the rest to the others.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(seed)
    pools = {name: _family_sentences(name) for name in TEMPLATE_FAMILIES}
    taken: set[str] = set()
    for name in TEMPLATE_FAMILIES:  # a text made by two families belongs to the first
        pools[name] = [s for s in pools[name] if s.text not in taken]
        taken.update(s.text for s in pools[name])
    total = sum(len(p) for p in pools.values())
    if n > total:
        raise ValueError(f"the templates make only {total} distinct sentences, asked for {n}")
    quota = dict.fromkeys(TEMPLATE_FAMILIES, 0)
    left = n
    open_families = list(TEMPLATE_FAMILIES)
    while left:
        share, extra = divmod(left, len(open_families))
        lucky = set(rng.sample(open_families, extra))
        for name in open_families:
            quota[name] += share + (name in lucky)
        left = 0
        for name in list(open_families):
            over = quota[name] - len(pools[name])
            if over >= 0:
                quota[name] -= over
                left += over
                open_families.remove(name)
    out: list[AnnotatedSentence] = []
    for name in TEMPLATE_FAMILIES:
        out.extend(rng.sample(pools[name], quota[name]))
    rng.shuffle(out)
    return out


def write_jsonl(records: Iterable[AnnotatedSentence], path: str | Path) -> None:
    """Write one ``{"text", "labels", "template"}`` JSON object per line (UTF-8, ``\\n``)."""
    lines = [
        json.dumps({"text": r.text, "labels": list(r.labels), "template": r.template})
        for r in records
    ]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))


def _parse_lines(lines: Iterable[str]) -> list[AnnotatedSentence]:
    out = []
    for line in lines:
        if line.strip():
            obj = json.loads(line)
            out.append(AnnotatedSentence(obj["text"], tuple(obj["labels"]), obj["template"]))
    return out


def read_jsonl(path: str | Path) -> list[AnnotatedSentence]:
    """Read a file written by :func:`write_jsonl`."""
    with open(path, encoding="utf-8") as f:
        return _parse_lines(f)


def load_demo_corpus() -> list[AnnotatedSentence]:
    """The corpus shipped with the package (``generate_corpus(3000, seed=0)``)."""
    text = (
        resources.files("lmvae.demo")
        .joinpath("data")
        .joinpath(_DATA_FILE)
        .read_text(encoding="utf-8")
    )
    return _parse_lines(text.splitlines())


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: write the corpus as JSON lines."""
    ap = argparse.ArgumentParser(
        prog="python -m lmvae.demo.corpus", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--out", required=True, help="output .jsonl file")
    ap.add_argument("--n", type=int, default=3000, help="number of sentences (default 3000)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = ap.parse_args(argv)
    write_jsonl(generate_corpus(args.n, args.seed), args.out)


if __name__ == "__main__":
    main()
