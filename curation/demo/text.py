"""Text banks for the demo crawl: domain phrasings, general-web topics, other languages, spam."""
from __future__ import annotations

import random

from curation.demo.facts import Fault, capitalize

# --- domain pages: each fact written in many phrasings, none copying a benchmark question -------

FACT_PHRASINGS = [
    "{Symptom} in a {equipment} usually points to {cause}. The fix is to {fix}.",
    "When technicians find {symptom} on a {equipment}, they check for {cause} first, because it is "
    "the most common reason. To correct it, {fix}.",
    "Field note: our {equipment} showed {symptom}. The root cause turned out to be {cause}, so the "
    "crew had to {fix}.",
    "A {equipment} that suffers from {symptom} is often a victim of {cause}. The recommended action "
    "is to {fix}.",
    "Troubleshooting tip for the {equipment}: {symptom} comes from {cause}. Shut it down safely and "
    "{fix}.",
    "Symptom: {symptom}. Equipment: {equipment}. Cause: {cause}. Remedy: {fix}.",
    "In our plant the {equipment} kept showing {symptom}. We traced it to {cause} and solved it when "
    "we decided to {fix}.",
    "Operators often report {symptom} on a {equipment}. Nine times out of ten it is caused by "
    "{cause}, and the lasting repair is to {fix}.",
    "Do not ignore {symptom} on a {equipment}: it is a classic sign of {cause}. Plan a stop and "
    "{fix}.",
    "Our reliability engineer explains that {symptom} of a {equipment} is caused by {cause}. Her "
    "advice is simple: {fix}.",
]

DOMAIN_TITLES = [
    "Troubleshooting the {equipment}: common faults and fixes",
    "{Equipment} maintenance guide for plant technicians",
    "What our crew learned repairing a {equipment}",
    "{Equipment} problems explained",
    "A practical checklist for {equipment} failures",
]

DOMAIN_INTROS = [
    "Unplanned downtime is expensive, and most of it starts with a small symptom that nobody wrote "
    "down. This page collects the faults we see most often and the repairs that actually work.",
    "Good maintenance is mostly about reading the machine. Listen, measure and compare with the "
    "last inspection before you order parts.",
    "Before any repair, isolate the machine, apply lockout and tagout, and confirm that stored "
    "energy has been released. Safety comes before speed.",
    "Condition monitoring tells you that something is wrong, but a technician still has to find "
    "out why. The notes below come from years of work on the shop floor.",
    "The following examples come from our maintenance logs. Each one links a symptom to its cause "
    "and to the repair that cleared it.",
]

DOMAIN_OUTROS = [
    "Record every repair in the maintenance log so that the next shift can see what was done.",
    "If the symptom returns after the repair, check the installation and the operating conditions "
    "before you replace more parts.",
    "Keep spare parts for the most common faults on the shelf; it cuts the repair time in half.",
    "Vibration readings, oil samples and thermal images taken each month make these faults easy to "
    "catch early.",
]


def render_fact(fault: Fault, rng: random.Random, template: str | None = None) -> str:
    template = template or rng.choice(FACT_PHRASINGS)
    return template.format(
        symptom=fault.symptom, Symptom=capitalize(fault.symptom), equipment=fault.equipment,
        Equipment=capitalize(fault.equipment), cause=fault.cause, fix=fault.fix,
    )


# --- general web pages -------------------------------------------------------------------------

_FILL = {
    "city": ["Lisbon", "Portland", "Kyoto", "Edinburgh", "Valencia", "Denver", "Melbourne", "Quebec"],
    "food": ["lentil soup", "roast chicken", "banana bread", "vegetable curry", "apple pie",
             "tomato pasta", "fish tacos", "mushroom risotto"],
    "team": ["the Rovers", "City United", "the Harbor Hawks", "the Valley Lions", "Northside FC"],
    "plant": ["tomatoes", "roses", "basil", "lavender", "potatoes", "strawberries", "tulips"],
    "gadget": ["phone", "laptop", "smartwatch", "tablet", "camera", "headset"],
    "person": ["Maria", "James", "Aiko", "Daniel", "Fatima", "Lucas", "Emma", "Noah"],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "number": ["two", "three", "four", "five", "six", "ten", "twelve"],
}

GENERAL_TOPICS: dict[str, dict[str, list[str]]] = {
    "cooking": {
        "titles": ["How to make {food} at home", "The best {food} recipe for busy weeks",
                   "Our family favourite: {food}"],
        "sentences": [
            "This {food} takes about forty minutes and uses ingredients you probably have already.",
            "Start by warming a little oil in a heavy pan over medium heat.",
            "Add the onions and cook them slowly until they are soft and golden.",
            "{person} learned this recipe from a grandmother who never measured anything.",
            "Season with salt and pepper, then taste again before you serve it.",
            "Leftovers keep well in the fridge for {number} days and taste even better the next day.",
            "If you want a lighter version, use less butter and add more vegetables.",
            "Serve it warm with fresh bread and a simple green salad.",
            "The secret is patience, because the flavours need time to come together.",
            "Children usually love it, and it is cheap to cook for a crowd.",
        ],
    },
    "travel": {
        "titles": ["A weekend in {city}", "What to see in {city} on a budget",
                   "{city} travel notes from {person}"],
        "sentences": [
            "We arrived in {city} on a rainy {day} and went straight to a small cafe near the station.",
            "The old town is best explored on foot, early in the morning before the crowds arrive.",
            "Public transport is cheap and easy to use, so you do not need to rent a car.",
            "Our hotel was simple but clean, and the staff gave us great advice about local food.",
            "Do not miss the market, where farmers sell bread, cheese and fruit every morning.",
            "The museum is free on the first {day} of each month, which makes it very busy.",
            "{person} says the view from the hill at sunset is the highlight of the whole trip.",
            "Bring comfortable shoes because the streets are steep and paved with stones.",
            "Most people stay for {number} nights, but a week would be even better.",
            "The best time to visit is late spring, when the weather is mild and the parks are green.",
        ],
    },
    "sports": {
        "titles": ["{team} win a close match on {day}", "Match report: {team} and a late goal",
                   "Season preview: can {team} go all the way?"],
        "sentences": [
            "{team} started the game slowly and were lucky to be level at half time.",
            "The coach made {number} changes after the break, and the energy changed at once.",
            "A young striker scored the winning goal with only a few minutes left on the clock.",
            "Fans in {city} celebrated long into the night after the final whistle.",
            "The defence looked much stronger than in the last few weeks.",
            "{person}, the captain, said the team had worked hard in training all week.",
            "The next match is on {day}, and tickets are already almost sold out.",
            "Injuries have been a problem this season, but the squad is finally getting healthy.",
            "Many people think this could be the best season for the club in years.",
            "The referee had a difficult evening, and both sides complained about several decisions.",
        ],
    },
    "gardening": {
        "titles": ["Growing {plant} in a small garden", "A beginner guide to {plant}",
                   "Why my {plant} finally did well this year"],
        "sentences": [
            "{plant} need plenty of sun, so choose the brightest spot in your garden.",
            "Water them deeply once or twice a week instead of a little every day.",
            "Good soil makes all the difference, so mix in compost before you plant.",
            "{person} grows {plant} on a balcony in {city} and gets a great harvest every summer.",
            "Watch out for snails after rain, because they can destroy young plants overnight.",
            "A layer of mulch keeps the roots cool and saves a lot of water.",
            "Plant them in early spring, once the risk of frost has passed.",
            "Remove dead leaves regularly to keep the plants healthy and tidy.",
            "It takes about {number} weeks before you see the first results.",
            "Sharing seeds with neighbours is a lovely way to try new varieties.",
        ],
    },
    "technology": {
        "titles": ["Review: a new {gadget} that gets the basics right",
                   "Is this {gadget} worth the money?", "Five things to know before buying a {gadget}"],
        "sentences": [
            "The new {gadget} feels solid in the hand and looks better than the photos suggest.",
            "Battery life is excellent, and it easily lasts a full day of normal use.",
            "The screen is bright enough to read outside, even on a sunny afternoon.",
            "{person} used it for {number} weeks and found only a few small problems.",
            "Setup takes a few minutes, and the software is simple to understand.",
            "The price is higher than last year, which may put some buyers off.",
            "Most people will not notice the faster chip in daily use.",
            "If you already own last year's model, there is little reason to upgrade.",
            "Customer support answered our questions quickly and politely.",
            "Overall it is a good choice for people who want something reliable.",
        ],
    },
    "local news": {
        "titles": ["{city} council approves new park", "Library in {city} extends opening hours",
                   "Residents of {city} vote on new bus routes"],
        "sentences": [
            "The city council of {city} voted on {day} to approve the plan after a long debate.",
            "Local residents have asked for more green space for many years.",
            "Work is expected to start next spring and should take about {number} months.",
            "{person}, who has lived in the area for decades, welcomed the decision.",
            "Some business owners worry about parking during the construction.",
            "The project will be paid for partly by a regional grant.",
            "A public meeting will be held next {day} to answer questions from the community.",
            "The mayor said the change would make the neighbourhood safer for children.",
            "Volunteers have already offered to help plant trees along the new paths.",
            "More details will be published on the city website in the coming weeks.",
        ],
    },
}


def fill(template: str, rng: random.Random) -> str:
    out = template
    for key, values in _FILL.items():
        while "{" + key + "}" in out:
            out = out.replace("{" + key + "}", rng.choice(values), 1)
    return capitalize(out)


def general_page(rng: random.Random) -> tuple[str, str, list[str]]:
    """(topic, title, paragraphs) of an ordinary English web page."""
    topic = rng.choice(list(GENERAL_TOPICS))
    bank = GENERAL_TOPICS[topic]
    title = fill(rng.choice(bank["titles"]), rng)
    # Sentences drawn without replacement: a real page does not repeat itself (Gopher would drop it).
    sentences = [fill(s, rng) for s in rng.sample(bank["sentences"], rng.randint(7, len(bank["sentences"])))]
    cut = sorted(rng.sample(range(2, len(sentences) - 1), 2))
    paragraphs = [" ".join(sentences[a:b]) for a, b in zip([0] + cut, cut + [len(sentences)])]
    return topic, title, paragraphs


# --- pages in other languages ------------------------------------------------------------------

FOREIGN_SENTENCES = {
    "de": [
        "Die Pumpe muss regelmäßig gewartet werden, damit sie zuverlässig läuft.",
        "Am Wochenende waren wir mit der ganzen Familie im Wald spazieren.",
        "Der Stadtrat hat am Dienstag beschlossen, einen neuen Park zu bauen.",
        "Das Rezept ist einfach und schmeckt auch den Kindern sehr gut.",
        "Wir empfehlen, die Lager alle sechs Monate zu schmieren und zu prüfen.",
        "Die Mannschaft hat das Spiel in der letzten Minute gewonnen.",
        "Im Frühling blühen die Tulpen in unserem Garten besonders schön.",
        "Bei Fragen wenden Sie sich bitte an unseren Kundendienst.",
    ],
    "fr": [
        "Nous avons passé un week-end magnifique dans la vieille ville.",
        "Le moteur doit être arrêté avant toute intervention de maintenance.",
        "La recette demande un peu de patience mais le résultat est délicieux.",
        "Le conseil municipal a voté pour la création d'une nouvelle bibliothèque.",
        "Les joueurs ont montré beaucoup de courage pendant toute la saison.",
        "Il faut arroser les plantes le matin quand il fait encore frais.",
        "Notre équipe technique vous répondra dans les plus brefs délais.",
        "Les prix ont augmenté cette année, surtout pour les produits frais.",
    ],
    "es": [
        "El fin de semana visitamos el mercado central de la ciudad.",
        "Es importante revisar el compresor antes de cada turno de trabajo.",
        "La receta de la abuela siempre lleva un poco de ajo y aceite de oliva.",
        "El equipo ganó el partido gracias a un gol en el último minuto.",
        "Los vecinos pidieron más zonas verdes para los niños del barrio.",
        "Recomendamos cambiar el filtro de aceite cada quinientas horas.",
        "El museo abre todos los días excepto los lunes.",
        "Las flores del jardín necesitan mucho sol y poca agua.",
    ],
}


def foreign_page(rng: random.Random) -> tuple[str, str, list[str]]:
    lang = rng.choice(list(FOREIGN_SENTENCES))
    sentences = FOREIGN_SENTENCES[lang]
    paragraphs = [" ".join(rng.sample(sentences, 4)) for _ in range(rng.randint(3, 5))]
    return lang, sentences[0][:40], paragraphs


# --- spam ---------------------------------------------------------------------------------------

SPAM_KEYWORDS = ["cheap pumps", "best price", "buy now", "free shipping", "casino bonus",
                 "discount parts", "click here", "limited offer", "win big"]


def spam_page(rng: random.Random) -> tuple[str, list[str]]:
    kws = rng.sample(SPAM_KEYWORDS, 3)
    line = " ".join(kws).upper() + "!!!"
    paragraphs = [line] * rng.randint(8, 14)
    paragraphs.append(" ".join(rng.choice(kws) for _ in range(60)))
    return kws[0].upper(), paragraphs
