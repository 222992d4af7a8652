"""Made-up project design documents and the teams that worked on them (project-triage's data).

A project is built from one to three components (a data pipeline, a mobile feature, personal data,
...). Each component needs some teams and brings its own vocabulary and sentences; generic
sentences about stakeholders, budgets and timelines fill the rest, and the non-goals name a
component the project does *not* have, as real documents do. The teams of a project are the union of
its components' teams, with a little noise (a team that was not needed after all, or one pulled in
late), so a classifier can learn them from the text but not perfectly.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

SEED = 20240505
PROJECTS = 240
FIRST_DAY = dt.date(2022, 1, 3)

TEAMS = (
    "backend",
    "data-engineering",
    "machine-learning",
    "mobile",
    "privacy-legal",
    "security",
    "sre",
    "web-frontend",
)

# component -> (teams it needs, terms it is written about with, its own sentences)
COMPONENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "data pipeline": (
        ("data-engineering",),
        (
            "ingestion job",
            "data lake",
            "batch window",
            "schema registry",
            "Airflow DAG",
            "change data capture",
            "Parquet files",
            "late-arriving records",
            "backfill",
            "data quality checks",
            "partitioning scheme",
            "warehouse tables",
        ),
        (
            "The {t} loads {n} million rows a night from the {sys} into the {t2}.",
            "Every {t} writes {t2} partitioned by day, so a {t3} touches one partition.",
            "We validate each {t} with {t2} before it reaches the {t3}; a failure stops it.",
            "The {t} must finish inside the {t2}, which ends at 6:00 when analysts start.",
            "{T} from the {sys} are deduplicated by business key before the {t2} is updated.",
            "A {t} of the last {n} months is needed once the {t2} is in place.",
        ),
    ),
    "machine learning model": (
        ("machine-learning", "data-engineering"),
        (
            "training set",
            "feature store",
            "gradient boosting model",
            "model drift",
            "offline evaluation",
            "precision and recall",
            "labelled examples",
            "model registry",
            "retraining schedule",
            "feature importance",
            "prediction service",
            "A/B test",
        ),
        (
            "The {t} is built from {n} thousand {t2} collected by the {sys}.",
            "We compare a {t} against the current rules with {t2} on a held-out month.",
            "Predictions are served by the {t} and logged so that {t2} can be measured weekly.",
            "Features come from the {t}; the {t2} keeps every version with its metrics.",
            "A {t} runs every {n} days, and an alert fires when {t2} is detected.",
            "Before any rollout, an {t} on {n} percent of traffic shows whether the {t2} helps.",
        ),
    ),
    "customer web portal": (
        ("web-frontend", "backend"),
        (
            "React components",
            "design system",
            "page load time",
            "accessibility audit",
            "customer portal",
            "single-page application",
            "browser support",
            "form validation",
            "user journey",
            "server-side rendering",
            "WCAG guidelines",
            "usability tests",
        ),
        (
            "The {t} is rebuilt with the {t2} so that every page looks and behaves the same.",
            "We target a {t} under {n} hundred milliseconds on a mid-range laptop.",
            "An {t} against the {t2} is planned before launch.",
            "The new {t} replaces {n} legacy screens of the {sys} with {t2}.",
            "{T} with {n} customers will check the {t2} before each release.",
            "The {t} uses {t2} so that search engines and slow phones get a usable page.",
        ),
    ),
    "mobile app feature": (
        ("mobile", "backend"),
        (
            "iOS and Android apps",
            "push notifications",
            "offline mode",
            "app store review",
            "mobile release train",
            "deep links",
            "Kotlin and Swift code",
            "crash reports",
            "battery usage",
            "in-app onboarding",
            "mobile analytics",
            "feature flags",
        ),
        (
            "The feature ships in the {t} behind {t2} so that we can turn it off remotely.",
            "{T} remind customers {n} days before a deadline, with a deep link into the app.",
            "The {t} keeps the last {n} screens available without a network.",
            "Each release goes through the {t} and the {t2}, which adds about a week.",
            "We watch {t} and {t2} for two weeks after every release.",
            "The {t} is shared between the {t2} to keep the two platforms in step.",
        ),
    ),
    "personal data": (
        ("privacy-legal", "security"),
        (
            "personal data",
            "GDPR",
            "data protection impact assessment",
            "retention period",
            "consent records",
            "right to erasure",
            "data processing agreement",
            "pseudonymisation",
            "data protection officer",
            "lawful basis",
            "subject access requests",
            "privacy notice",
        ),
        (
            "The project processes {t} of about {n} thousand customers, so a {t2} is required.",
            "{T} is deleted after a {t2} of {n} months unless the customer agrees otherwise.",
            "The {t} must be consulted before any {t2} is collected.",
            "We answer {t} within {n} days, as {t2} requires.",
            "Identifiers are replaced by {t} before the data leaves the {sys}.",
            "A {t} with the vendor covers the {t2} they will see.",
        ),
    ),
    "payments": (
        ("backend", "security"),
        (
            "payment provider",
            "card payments",
            "refunds",
            "PCI DSS scope",
            "idempotency keys",
            "ledger",
            "chargebacks",
            "strong customer authentication",
            "settlement files",
            "payment reconciliation",
            "fraud checks",
            "currency conversion",
        ),
        (
            "Every call to the {t} carries {t2} so that a retry never charges twice.",
            "{T} are written to the {t2} in the same transaction as the order.",
            "The {t} sends {t2} every night, matched against our {t3} by {n}:00.",
            "Keeping card numbers out of our systems keeps the {t} small.",
            "{T} above {n} euros need {t2} under PSD2.",
            "We expect {n} {t} a month and handle them in the {sys}.",
        ),
    ),
    "infrastructure migration": (
        ("sre",),
        (
            "Kubernetes cluster",
            "Terraform modules",
            "service level objectives",
            "on-call rota",
            "load balancer",
            "autoscaling",
            "disaster recovery",
            "capacity plan",
            "observability",
            "runbooks",
            "blue-green deployment",
            "Prometheus alerts",
        ),
        (
            "The services move to the {t} in {n} waves, each with a rollback plan.",
            "All infrastructure is described in {t} and reviewed like application code.",
            "We define {t} for latency and error rate, and {t2} that page the {t3}.",
            "{T} is tested twice a year by failing over to the second region.",
            "The {t} assumes {n} percent more traffic a year and is reviewed each quarter.",
            "Every service has {t} and a {t2} before it takes production traffic.",
        ),
    ),
    "public API": (
        ("backend", "sre"),
        (
            "REST API",
            "OpenAPI specification",
            "rate limits",
            "API keys",
            "versioning policy",
            "developer portal",
            "webhooks",
            "pagination",
            "API gateway",
            "contract tests",
            "error codes",
            "partner integrations",
        ),
        (
            "The {t} is described by an {t2} from which the client libraries are generated.",
            "Partners get {t} from the {t2} and are held to {t3} of {n} requests a minute.",
            "Breaking changes follow the {t}: a new major version, and the old one for {n} months.",
            "{T} tell partners about changes instead of them polling the {t2}.",
            "{T} run in the pipeline against every partner's recorded calls.",
            "The {t} publishes {t2} with an example for each.",
        ),
    ),
    "reporting dashboard": (
        ("data-engineering", "web-frontend"),
        (
            "dashboard",
            "key performance indicators",
            "self-service reporting",
            "drill-down",
            "data model",
            "refresh schedule",
            "metric definitions",
            "business intelligence tool",
            "executive summary",
            "charts",
            "export to Excel",
            "single source of truth",
        ),
        (
            "The {t} shows {n} {t2} agreed with the business owners.",
            "Each figure on the {t} links to its {t2} so that nobody argues about numbers.",
            "The {t} is refreshed every {n} hours from the warehouse.",
            "Managers asked for {t} and {t2} rather than new reports by e-mail.",
            "The {t} becomes the {t2} for sales figures.",
            "{T} in the {t2} replace {n} spreadsheets kept by hand.",
        ),
    ),
    "single sign-on": (
        ("security", "backend"),
        (
            "single sign-on",
            "OpenID Connect",
            "multi-factor authentication",
            "identity provider",
            "access tokens",
            "role-based access",
            "session timeout",
            "password reset",
            "audit log",
            "least privilege",
            "penetration test",
            "secrets management",
        ),
        (
            "Staff sign in through {t} with the company's {t2}.",
            "{T} is required for every administrator, and {t2} are valid for {n} minutes.",
            "Rights follow {t}: each role gets the {t2} it needs.",
            "Every sign-in and rights change goes to the {t}, kept for {n} months.",
            "A {t} by an outside firm is booked before go-live.",
            "Keys and passwords live in {t}, never in the code.",
        ),
    ),
}

DOMAINS = (
    "retail banking",
    "insurance claims",
    "logistics",
    "human resources",
    "marketing",
    "customer support",
    "energy trading",
    "online shop",
    "travel bookings",
    "healthcare",
)
SYSTEMS = (
    "core banking system",
    "CRM",
    "ERP",
    "order system",
    "call-centre tool",
    "billing platform",
    "legacy mainframe",
    "partner portal",
    "warehouse system",
)
OWNERS = (
    "the head of operations",
    "the product owner",
    "the finance director",
    "the customer service lead",
    "the chief data officer",
    "the marketing manager",
)
ADJECTIVES = ("New", "Unified", "Real-time", "Self-service", "Modern", "Automated", "Secure")

GENERIC = (
    "The {domain} team asked for this work after {n} complaints last quarter.",
    "{Owner} sponsors the project and approves changes of scope.",
    "Today the process relies on the {sys} and a fair amount of manual work.",
    "We expect to save about {n} hours of manual work a month.",
    "The budget covers {n} months of work for the people named below.",
    "Stakeholders in {domain} will be consulted at each milestone.",
    "A weekly status note goes to {owner} and the steering group.",
    "The first version should reach users within {n} weeks of the start.",
    "We will measure success by the time it takes to serve a request in {domain}.",
    "The project depends on the {sys} team keeping its interfaces stable.",
    "Training material for {domain} staff is part of the delivery.",
    "The decision log at the end of this document records what we chose and why.",
    "Costs are shared between {domain} and the central IT budget.",
    "We reuse what exists where we can rather than building it again.",
    "Questions about this document go to {owner}.",
    "A pilot with {n} users comes before the general rollout.",
    "The current workaround in the {sys} is fragile and poorly documented.",
    "Each milestone ends with a demonstration to the users in {domain}.",
    "Any delay on the {sys} side moves the plan by the same amount.",
    "We keep the scope small enough to deliver in {n} sprints.",
    "Users in {domain} describe the current process as slow and error-prone.",
    "This document will be updated as decisions are made.",
    "The team will hold a retrospective after the pilot.",
    "Support moves to the usual service desk once the project closes.",
)
SECTIONS = (  # heading, sentences, share of them about the project's own components
    ("Summary", 6, 0.5),
    ("Context", 26, 0.35),
    ("Goals", 14, 0.5),
    ("Non-goals", 6, 0.0),
    ("Proposed design", 80, 0.65),
    ("Risks", 22, 0.45),
    ("Milestones", 14, 0.3),
    ("Open questions", 10, 0.4),
)
NON_GOAL = (
    "Changes to the {t} are out of scope for this project.",
    "We do not plan any work on {t} here; it belongs to another initiative.",
    "This project does not touch the {t}.",
)


def sentence(rng: random.Random, template: str, terms: tuple[str, ...], domain: str) -> str:
    """Fill one template with terms of a component, numbers and names."""
    t, t2, t3 = rng.sample(terms, 3)
    text = template.format(
        t=t,
        t2=t2,
        t3=t3,
        T=t[0].upper() + t[1:],
        n=rng.choice((2, 3, 4, 5, 6, 8, 10, 12, 20, 30, 50)),
        sys=rng.choice(SYSTEMS),
        domain=domain,
        owner=rng.choice(OWNERS),
        Owner=rng.choice(OWNERS).capitalize(),
    )
    return text


def document(rng: random.Random, number: int) -> dict[str, Any]:
    """Return one project: id, title, submission date, teams and the document's text."""
    names = list(COMPONENTS)
    parts = rng.sample(names, rng.choices((1, 2, 3), weights=(3, 5, 2))[0])
    teams = {team for part in parts for team in COMPONENTS[part][0]}
    if rng.random() < 0.08 and len(teams) > 1:
        teams.discard(rng.choice(sorted(teams)))  # a team that turned out not to be needed
    if rng.random() < 0.08:
        teams.add(rng.choice(TEAMS))  # a team pulled in late
    domain = rng.choice(DOMAINS)
    title = f"{rng.choice(ADJECTIVES)} {parts[0]} for {domain}"
    others = [n for n in names if n not in parts]
    length = rng.uniform(0.7, 1.3)
    lines = [f"# {title}", ""]
    for heading, count, own_share in SECTIONS:
        lines += [f"## {heading}", ""]
        sentences = []
        for _ in range(max(2, round(count * length))):
            if heading == "Non-goals":
                other = COMPONENTS[rng.choice(others)]
                sentences.append(rng.choice(NON_GOAL).format(t=rng.choice(other[1])))
            elif rng.random() < own_share:
                _, terms, templates = COMPONENTS[rng.choice(parts)]
                sentences.append(sentence(rng, rng.choice(templates), terms, domain))
            else:
                sentences.append(sentence(rng, rng.choice(GENERIC), ("a", "b", "c"), domain))
        # paragraphs of four to seven sentences
        while sentences:
            size = rng.randint(4, 7)
            lines += [" ".join(sentences[:size]), ""]
            sentences = sentences[size:]
    submitted = FIRST_DAY + dt.timedelta(days=round(number * 1000 / PROJECTS + rng.uniform(0, 3)))
    return {
        "id": f"P{number:04d}",
        "title": title,
        "submitted": submitted.isoformat(),
        "teams": sorted(teams),
        "text": "\n".join(lines).rstrip() + "\n",
    }


def generate(rng: random.Random) -> list[dict[str, Any]]:
    """Return every project, oldest first."""
    return [document(rng, number) for number in range(1, PROJECTS + 1)]
