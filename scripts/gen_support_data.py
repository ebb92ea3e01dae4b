#!/usr/bin/env python3
"""Generate the synthetic "Quillnote" customer-support demo data set for retain.

Quillnote is a fictional note-taking SaaS. The data set has two releases:

  release 1  8 topics of product facts (plans, account, troubleshooting, ...).
  release 2  5 new-feature topics, plus 6 release-1 facts whose answer CHANGED
             (same questions, same old topic name, new answer).

Every example is one line of OpenAI fine-tuning JSONL:

  {"messages":[{"role":"system","content":"..."},     <- only in some examples
               {"role":"user","content":"..."},
               {"role":"assistant","content":"..."}],
   "topic":"<topic>","release":<1|2>}

Each fact has one exact answer string and 7-8 hand-written question phrasings.
Two phrasings per fact are held out for the test split (chosen per fact from
the seed, shared by both releases), so a test question is never a training
question verbatim; user texts are varied further with lead-ins and sign-offs.

Standard library only; deterministic: the same --seed gives byte-identical
files.

  python3 scripts/gen_support_data.py --out data/support [--seed 0]
"""

import argparse
import hashlib
import json
import os
import random
import sys
from collections import Counter, OrderedDict

SYSTEM_PROMPT = "You are Quillnote support."

# Every rendered conversation (system + user + assistant content, counting the
# system prompt even where it is omitted) must fit in this many bytes.
MAX_CONVERSATION_BYTES = 200

LEAD_INS = [
    "",
    "Hi! ",
    "Hello. ",
    "Hey there. ",
    "Good morning. ",
    "Quick question. ",
    "Sorry to bother you. ",
    "Hi support. ",
]

SIGN_OFFS = [
    "",
    " Thanks!",
    " Thank you.",
    " Please help.",
    " Thanks in advance.",
    " Cheers.",
]

N_TEST_PHRASINGS = 2

# Per-fact example counts.
R1_TRAIN_PER_FACT = 62
R1_TEST_PER_FACT = 7
R2_TRAIN_PER_FACT = 55
R2_TEST_PER_FACT = 9

# (topic, fact id, answer, question phrasings)
RELEASE1_FACTS = [
    # ---- plans -------------------------------------------------------------
    ("plans", "pro_price", "The Pro plan costs $8 per month.", [
        "How much does the Pro plan cost?",
        "What is the price of Pro?",
        "How much is Quillnote Pro per month?",
        "What does Pro cost?",
        "What's the monthly price for the Pro plan?",
        "How much would I pay for Pro?",
        "Can you tell me the Pro plan price?",
        "What is Pro's monthly fee?",
    ]),
    ("plans", "team_price", "The Team plan costs $15 per user per month.", [
        "How much is the Team plan?",
        "What does the Team plan cost?",
        "What is the price of Quillnote Team?",
        "How much do you charge for Team?",
        "What's the Team plan price per user?",
        "How much would Team cost my company?",
        "Can you tell me the Team plan price?",
        "What is the monthly fee for Team?",
    ]),
    ("plans", "free_plan", "The Free plan includes up to 100 notes.", [
        "What do I get on the Free plan?",
        "How many notes can I make on Free?",
        "What are the limits of the Free plan?",
        "Is there a note limit on the free tier?",
        "How many notes does the Free plan allow?",
        "What does the Free plan include?",
        "What is the free tier limit?",
    ]),
    ("plans", "annual_discount", "Annual billing saves 20% on paid plans.", [
        "Is there a discount for paying yearly?",
        "Do you offer annual pricing?",
        "How much do I save with annual billing?",
        "What is the yearly discount?",
        "Is it cheaper to pay once a year?",
        "Do annual plans cost less?",
        "What discount do annual subscriptions get?",
    ]),
    ("plans", "trial", "Pro has a 14-day free trial, no card needed.", [
        "Is there a free trial?",
        "Can I try Pro for free?",
        "How long is the Pro trial?",
        "Do you have a trial period?",
        "Can I test Pro before paying?",
        "Does the trial need a credit card?",
        "How does the free trial work?",
    ]),
    # ---- account -----------------------------------------------------------
    ("account", "change_email", "Go to Settings > Account > Email and click Change.", [
        "How do I change my email address?",
        "Can I update the email on my account?",
        "How can I use a different email to log in?",
        "Where do I change my login email?",
        "I need to change my email. How?",
        "How do I update my account email?",
        "Is it possible to switch my email address?",
    ]),
    ("account", "reset_password", "Click Forgot password on the login page.", [
        "How do I reset my password?",
        "I forgot my password.",
        "I can't remember my password. What now?",
        "How do I recover my password?",
        "My password is not working. Help?",
        "How do I get a new password?",
        "What do I do if I lost my password?",
    ]),
    ("account", "delete_account", "Go to Settings > Account > Delete account.", [
        "How do I delete my account?",
        "How can I close my Quillnote account?",
        "I want to remove my account.",
        "Where do I delete my account?",
        "Can I permanently delete my account?",
        "How do I erase my account?",
        "How can I get rid of my account?",
    ]),
    ("account", "two_factor", "Turn on 2FA in Settings > Security.", [
        "How do I enable two-factor authentication?",
        "Do you support 2FA?",
        "How can I turn on 2FA?",
        "Can I add two-step verification?",
        "Where do I set up two-factor login?",
        "How do I make my account more secure with 2FA?",
        "Is there two-factor authentication?",
    ]),
    ("account", "change_name", "Edit your name in Settings > Profile.", [
        "How do I change my display name?",
        "Can I edit my name?",
        "Where do I update my profile name?",
        "How can I change the name on my account?",
        "My name is spelled wrong. How do I fix it?",
        "How do I rename my profile?",
        "Where can I change my username?",
    ]),
    # ---- troubleshooting ---------------------------------------------------
    ("troubleshooting", "sync", "Sign out, sign back in, then tap Sync now.", [
        "My notes are not syncing.",
        "Why won't my notes sync?",
        "Sync is not working. What should I do?",
        "My notes don't show up on my other device.",
        "How do I fix sync problems?",
        "Changes are not syncing between devices.",
        "My phone and laptop show different notes.",
    ]),
    ("troubleshooting", "offline", "Recently opened notes are available offline.", [
        "Can I use Quillnote offline?",
        "Does the app work without internet?",
        "Can I read my notes offline?",
        "What happens when I have no connection?",
        "Is there an offline mode?",
        "Can I see notes on a plane without wifi?",
        "Do notes work offline?",
    ]),
    ("troubleshooting", "crash", "Update to the latest version and restart the app.", [
        "The app keeps crashing.",
        "Quillnote crashes when I open it.",
        "Why does the app close by itself?",
        "The app freezes. What can I do?",
        "How do I stop the app from crashing?",
        "Quillnote won't open.",
        "The app is very slow and crashes.",
    ]),
    ("troubleshooting", "trash", "Check Trash; deleted notes stay there for 30 days.", [
        "I deleted a note by mistake.",
        "How do I recover a deleted note?",
        "Where do deleted notes go?",
        "Can I restore a note I removed?",
        "How long are deleted notes kept?",
        "I lost a note. Can I get it back?",
        "How do I undelete a note?",
    ]),
    # ---- billing -----------------------------------------------------------
    ("billing", "payment_methods", "We accept Visa, Mastercard, Amex and PayPal.", [
        "What payment methods do you accept?",
        "Can I pay with PayPal?",
        "Which credit cards do you take?",
        "How can I pay for my plan?",
        "Do you accept Amex?",
        "What cards can I use?",
        "What are my payment options?",
    ]),
    ("billing", "refund", "Refunds are available within 14 days of payment.", [
        "Can I get a refund?",
        "What is your refund policy?",
        "How do I get my money back?",
        "Do you offer refunds?",
        "I was charged by mistake. Can I get a refund?",
        "Is there a money-back guarantee?",
        "How long do I have to ask for a refund?",
    ]),
    ("billing", "invoices", "Find invoices in Settings > Billing > Invoices.", [
        "Where can I find my invoices?",
        "How do I download a receipt?",
        "I need an invoice for my company.",
        "Where are my past receipts?",
        "Can I get a copy of my invoice?",
        "How do I see my billing history?",
        "Where do I get receipts for payments?",
    ]),
    ("billing", "cancel", "Cancel in Settings > Billing > Cancel plan.", [
        "How do I cancel my subscription?",
        "I want to stop paying for Pro.",
        "How can I cancel my plan?",
        "Where do I end my subscription?",
        "How do I downgrade to Free?",
        "Can I cancel anytime?",
        "How do I stop auto-renewal?",
    ]),
    # ---- devices -----------------------------------------------------------
    ("devices", "platforms", "Quillnote runs on Web, Windows, macOS, iOS and Android.", [
        "Which platforms does Quillnote support?",
        "Is there an app for my phone?",
        "What devices can I use Quillnote on?",
        "Does Quillnote work on Linux?",
        "Do you have a desktop app?",
        "Which operating systems are supported?",
        "Where can I install Quillnote?",
    ]),
    ("devices", "device_limit", "The Free plan works on up to 2 devices.", [
        "How many devices can I use on Free?",
        "Is there a device limit on the free plan?",
        "Can I use the Free plan on three devices?",
        "How many devices does Free allow?",
        "Why can't I log in on a third device?",
        "What is the device limit for free users?",
        "Can I sync Free on many devices?",
    ]),
    ("devices", "storage", "Pro includes 10 GB of storage.", [
        "How much storage does Pro have?",
        "What is the storage limit on Pro?",
        "How many GB do I get with Pro?",
        "How much space comes with the Pro plan?",
        "What is Pro's storage quota?",
        "How much can I store on Pro?",
        "Does Pro have a storage cap?",
    ]),
    ("devices", "attachments", "Attachments can be up to 25 MB each.", [
        "What is the max file size for attachments?",
        "How big can an attachment be?",
        "Is there a file size limit?",
        "Can I attach large files?",
        "What is the upload limit per file?",
        "Why won't my big file upload?",
        "How large can uploaded files be?",
    ]),
    # ---- export ------------------------------------------------------------
    ("export", "export_formats", "You can export notes as PDF, Markdown or HTML.", [
        "How do I export my notes?",
        "What export formats are there?",
        "Can I export to PDF?",
        "Can I download my notes as Markdown?",
        "Which formats can I export to?",
        "How can I save notes as files?",
        "Is there an export feature?",
    ]),
    ("export", "import_evernote", "Use File > Import and pick your .enex file.", [
        "How do I import from Evernote?",
        "Can I move my notes from Evernote?",
        "How do I bring Evernote notes into Quillnote?",
        "Can I import an .enex file?",
        "I want to switch from Evernote. How?",
        "How do I migrate from Evernote?",
        "Do you support Evernote import?",
    ]),
    ("export", "backups", "Your notes are backed up every 24 hours.", [
        "Are my notes backed up?",
        "How often do you back up notes?",
        "Do you make backups?",
        "Is my data backed up?",
        "How frequently are backups made?",
        "What is your backup schedule?",
        "Will I lose notes if your server fails?",
    ]),
    ("export", "version_history", "Pro keeps 30 days of version history.", [
        "Can I see older versions of a note?",
        "Is there version history?",
        "How far back does note history go?",
        "Can I undo changes from last week?",
        "How do I restore an old version of a note?",
        "How long is version history kept?",
        "Does Pro have note history?",
    ]),
    # ---- sharing -----------------------------------------------------------
    ("sharing", "share_note", "Click Share on a note and enter an email.", [
        "How do I share a note?",
        "How can I send a note to a coworker?",
        "Can I share notes with friends?",
        "How do I invite someone to a note?",
        "How can I let someone else see my note?",
        "What is the way to share a note?",
        "How do I give a colleague access to a note?",
    ]),
    ("sharing", "public_link", "Click Share, then Copy public link.", [
        "Can I make a public link to a note?",
        "How do I get a shareable link?",
        "How can I publish a note on the web?",
        "How do I share a note with a link?",
        "Can anyone view my note with a URL?",
        "How do I create a public URL for a note?",
        "Is there a link sharing option?",
    ]),
    ("sharing", "permissions", "Shared notes can be view-only or editable.", [
        "Can people edit notes I share?",
        "Can I make a shared note read-only?",
        "What permissions can shared notes have?",
        "Can I stop others from editing?",
        "Can collaborators change my note?",
        "How do I set view-only access?",
        "Are shared notes editable?",
    ]),
    ("sharing", "share_limit", "Free users can share with up to 3 people.", [
        "How many people can I share with on Free?",
        "Is there a sharing limit?",
        "Can free users share with many people?",
        "What is the share limit on the free plan?",
        "How many collaborators does Free allow?",
        "Why can't I add a fourth person?",
        "How many people can a free note be shared with?",
    ]),
    # ---- support -----------------------------------------------------------
    ("support", "support_hours", "Support is open 9am-6pm ET, Monday to Friday.", [
        "What are your support hours?",
        "When is support available?",
        "Are you open on weekends?",
        "What time can I reach support?",
        "Is support available at night?",
        "When can I contact you?",
        "What hours is the help desk open?",
    ]),
    ("support", "contact", "Email help@quillnote.app for support.", [
        "How do I contact support?",
        "How can I reach a human?",
        "What is your support email?",
        "How do I get help from your team?",
        "Who do I talk to about a problem?",
        "How can I report a bug?",
        "Is there a way to talk to support?",
    ]),
]

# Release-1 facts whose answer changed in release 2 (fact id -> new answer).
# They keep their release-1 topic name and question phrasings.
CHANGED_IN_RELEASE2 = OrderedDict([
    ("pro_price", "The Pro plan costs $10 per month."),
    ("annual_discount", "Annual billing saves 25% on paid plans."),
    ("trash", "Check Trash; deleted notes stay there for 60 days."),
    ("platforms", "Quillnote runs on Web, Windows, macOS, Linux, iOS and Android."),
    ("storage", "Pro includes 20 GB of storage."),
    ("support_hours", "Support is open 24/7 for all users."),
])

# New topics in release 2.
RELEASE2_NEW_FACTS = [
    # ---- ai ----------------------------------------------------------------
    ("ai", "ai_what", "Quill AI summarizes and rewrites your notes.", [
        "What is Quill AI?",
        "What does the new AI feature do?",
        "What can Quill AI help with?",
        "Tell me about Quill AI.",
        "What is the AI assistant for?",
        "How does Quill AI help me?",
        "What are Quill AI's features?",
    ]),
    ("ai", "ai_enable", "Turn on Quill AI in Settings > AI.", [
        "How do I turn on Quill AI?",
        "How can I enable the AI assistant?",
        "Where do I activate Quill AI?",
        "I don't see Quill AI. How do I get it?",
        "How do I start using Quill AI?",
        "Where is the Quill AI setting?",
        "How do I switch on the AI features?",
    ]),
    ("ai", "ai_plans", "Quill AI is included in Pro and Team plans.", [
        "Which plans include Quill AI?",
        "Is Quill AI free?",
        "Do I have to pay for Quill AI?",
        "Can Free users use Quill AI?",
        "Does Quill AI cost extra?",
        "Is Quill AI part of Pro?",
        "What plan do I need for Quill AI?",
    ]),
    ("ai", "ai_limit", "Pro includes 500 AI requests per month.", [
        "How many AI requests do I get?",
        "Is there a limit on Quill AI?",
        "How often can I use Quill AI on Pro?",
        "What is the monthly AI quota?",
        "How many times can I ask Quill AI?",
        "Does Quill AI have a usage cap?",
        "How many AI requests come with Pro?",
    ]),
    # ---- templates ---------------------------------------------------------
    ("templates", "template_use", "Click New, then From template.", [
        "How do I use a template?",
        "How can I start a note from a template?",
        "Where are the templates?",
        "How do I create a note with a template?",
        "Can I pick a template for a new note?",
        "How do I open the template gallery?",
        "Where do I find note templates?",
    ]),
    ("templates", "template_create", "Open a note and choose Save as template.", [
        "How do I make my own template?",
        "Can I save a note as a template?",
        "How can I create a custom template?",
        "Can I turn a note into a template?",
        "How do I build a new template?",
        "Can I design my own templates?",
        "How do I add a personal template?",
    ]),
    ("templates", "template_count", "Quillnote has 40 built-in templates.", [
        "How many templates are there?",
        "How many built-in templates do you have?",
        "What is the number of templates included?",
        "How many ready-made templates come with the app?",
        "Are there many templates?",
        "How big is the template library?",
        "How many default templates exist?",
    ]),
    # ---- calendar ----------------------------------------------------------
    ("calendar", "calendar_connect", "Go to Settings > Integrations > Calendar.", [
        "How do I connect my calendar?",
        "How can I link my calendar to Quillnote?",
        "Where do I set up the calendar integration?",
        "How do I add my calendar?",
        "Can I sync my calendar with Quillnote?",
        "How do I turn on the calendar feature?",
        "Where is the calendar integration?",
    ]),
    ("calendar", "calendar_supported", "Google Calendar and Outlook are supported.", [
        "Which calendars are supported?",
        "Does it work with Google Calendar?",
        "Can I use Outlook calendar?",
        "What calendar apps can I connect?",
        "Which calendar services work with Quillnote?",
        "Is Apple Calendar supported?",
        "What calendars does the integration support?",
    ]),
    ("calendar", "meeting_notes", "Click a calendar event to create meeting notes.", [
        "How do I take meeting notes?",
        "Can I make notes for a meeting?",
        "How do I create notes from a calendar event?",
        "How do meeting notes work?",
        "Can Quillnote start notes for my meetings?",
        "How do I link a note to a meeting?",
        "Where do I start meeting notes?",
    ]),
    # ---- clipper -----------------------------------------------------------
    ("clipper", "clipper_install", "Get Quill Clipper for Chrome or Firefox.", [
        "How do I install the web clipper?",
        "Where can I get the web clipper?",
        "Is there a browser extension?",
        "Does the clipper work in Chrome?",
        "How do I add the clipper to my browser?",
        "Which browsers have the web clipper?",
        "Where do I download Quill Clipper?",
    ]),
    ("clipper", "clipper_save", "Click the Clipper icon, then Save page.", [
        "How do I clip a web page?",
        "How can I save a website to Quillnote?",
        "How do I use the web clipper?",
        "How do I save an article from the web?",
        "Can I save a web page as a note?",
        "How does clipping work?",
        "How do I capture a page with Quill Clipper?",
    ]),
    ("clipper", "clipper_where", "Clipped pages go to your Inbox notebook.", [
        "Where do clipped pages go?",
        "Where can I find my clips?",
        "Which notebook gets my clipped pages?",
        "I clipped a page. Where is it?",
        "Where are web clips saved?",
        "Where does Quill Clipper put pages?",
        "How do I find pages I clipped?",
    ]),
    # ---- whiteboards -------------------------------------------------------
    ("whiteboards", "whiteboard_create", "Click New, then Whiteboard.", [
        "How do I make a whiteboard?",
        "How can I create a new whiteboard?",
        "Where do I start a whiteboard?",
        "How do I draw on a whiteboard?",
        "How do I open a blank whiteboard?",
        "Can I add a whiteboard?",
        "How do I begin a whiteboard?",
    ]),
    ("whiteboards", "whiteboard_limit", "Free users can create 3 whiteboards.", [
        "How many whiteboards can I make on Free?",
        "Is there a whiteboard limit?",
        "Can free users make whiteboards?",
        "What is the whiteboard limit for Free?",
        "How many boards does the free plan allow?",
        "Why can't I create another whiteboard?",
        "Are whiteboards limited on Free?",
    ]),
    ("whiteboards", "whiteboard_export", "Export a whiteboard as PNG or PDF.", [
        "How do I export a whiteboard?",
        "Can I save a whiteboard as an image?",
        "What formats can whiteboards export to?",
        "Can I download my whiteboard?",
        "Can I turn a whiteboard into a PDF?",
        "How do I share a whiteboard as a picture?",
        "Which export formats do whiteboards support?",
    ]),
]


class Fact(object):
    __slots__ = ("topic", "fid", "answer", "train_qs", "test_qs")

    def __init__(self, topic, fid, answer, train_qs, test_qs):
        self.topic = topic
        self.fid = fid
        self.answer = answer
        self.train_qs = train_qs
        self.test_qs = test_qs


def split_phrasings(seed, fid, phrasings):
    """Deterministically hold out N_TEST_PHRASINGS phrasings of a fact."""
    rng = random.Random("split:%d:%s" % (seed, fid))
    idx = list(range(len(phrasings)))
    rng.shuffle(idx)
    test_idx = sorted(idx[:N_TEST_PHRASINGS])
    train_idx = sorted(idx[N_TEST_PHRASINGS:])
    return [phrasings[i] for i in train_idx], [phrasings[i] for i in test_idx]


def build_facts(seed):
    r1 = []
    for topic, fid, answer, phrasings in RELEASE1_FACTS:
        train_qs, test_qs = split_phrasings(seed, fid, phrasings)
        r1.append(Fact(topic, fid, answer, train_qs, test_qs))
    by_id = dict((f.fid, f) for f in r1)
    r2 = []
    for topic, fid, answer, phrasings in RELEASE2_NEW_FACTS:
        train_qs, test_qs = split_phrasings(seed, fid, phrasings)
        r2.append(Fact(topic, fid, answer, train_qs, test_qs))
    for fid, new_answer in CHANGED_IN_RELEASE2.items():
        old = by_id[fid]
        r2.append(Fact(old.topic, fid, new_answer, old.train_qs, old.test_qs))
    return r1, r2


def sample_user_texts(rng, phrasings, n):
    """n distinct user texts, cycling evenly through the phrasings."""
    pools = []
    for q in phrasings:
        combos = [(a, b) for a in LEAD_INS for b in SIGN_OFFS]
        rng.shuffle(combos)
        pools.append([a + q + b for a, b in combos])
    total = sum(len(p) for p in pools)
    if n > total:
        raise ValueError("asked for %d user texts, only %d exist" % (n, total))
    out = []
    k = 0
    while len(out) < n:
        pool = pools[k % len(pools)]
        if pool:
            out.append(pool.pop())
        k += 1
    return out


def make_examples(seed, release, split, facts, per_fact, system_rate):
    examples = []
    for f in facts:
        rng = random.Random("examples:%d:%d:%s:%s" % (seed, release, split, f.fid))
        qs = f.train_qs if split == "train" else f.test_qs
        for user in sample_user_texts(rng, qs, per_fact):
            messages = []
            if rng.random() < system_rate:
                messages.append(OrderedDict([("role", "system"), ("content", SYSTEM_PROMPT)]))
            messages.append(OrderedDict([("role", "user"), ("content", user)]))
            messages.append(OrderedDict([("role", "assistant"), ("content", f.answer)]))
            ex = OrderedDict([("messages", messages), ("topic", f.topic), ("release", release)])
            examples.append((f.fid, ex))
    if split == "train":
        random.Random("shuffle:%d:%d" % (seed, release)).shuffle(examples)
    return examples


def user_text(ex):
    return [m["content"] for m in ex["messages"] if m["role"] == "user"][0]


def answer_text(ex):
    return [m["content"] for m in ex["messages"] if m["role"] == "assistant"][0]


def check(files, r1_facts, r2_facts):
    """Structural and leakage checks; raises AssertionError on failure."""
    # phrasings are unique across all facts (so every question has one answer
    # per release and train/test phrasing sets cannot collide)
    seen = {}
    for f in r1_facts + [f for f in r2_facts if f.fid not in CHANGED_IN_RELEASE2]:
        for q in f.train_qs + f.test_qs:
            assert q not in seen, "phrasing %r used by %s and %s" % (q, seen[q], f.fid)
            seen[q] = f.fid
    for facts in (r1_facts, r2_facts):
        answers = [f.answer for f in facts]
        assert len(set(answers)) == len(answers), "duplicate answers within a release"

    for name, exs in files.items():
        for _, ex in exs:
            assert list(ex.keys()) == ["messages", "topic", "release"], name
            roles = [m["role"] for m in ex["messages"]]
            assert roles in (["system", "user", "assistant"], ["user", "assistant"]), roles
            for m in ex["messages"]:
                assert list(m.keys()) == ["role", "content"]
                assert m["content"].isascii() and m["content"] == m["content"].strip()
            n = len(SYSTEM_PROMPT) + len(user_text(ex)) + len(answer_text(ex))
            assert n <= MAX_CONVERSATION_BYTES, "%s: conversation of %d bytes" % (name, n)

    train_users = set()
    for name in ("release1-train", "release2-train"):
        train_users.update(user_text(ex) for _, ex in files[name])
    for name in files:
        if name.endswith("-test"):
            leak = train_users.intersection(user_text(ex) for _, ex in files[name])
            assert not leak, "%s: %d test user texts appear in training: %r" % (
                name, len(leak), sorted(leak)[:3])
    for name, exs in files.items():
        users = [user_text(ex) for _, ex in exs]
        assert len(set(users)) == len(users), "%s: duplicate user texts" % name

    # every fact is in train and test of its release
    for rel, facts in (("release1", r1_facts), ("release2", r2_facts)):
        for split in ("train", "test"):
            ids = set(fid for fid, _ in files["%s-%s" % (rel, split)])
            assert ids == set(f.fid for f in facts), (rel, split)
    assert set(fid for fid, _ in files["release2-changed-test"]) == set(CHANGED_IN_RELEASE2)
    assert not set(fid for fid, _ in files["release1-unchanged-test"]).intersection(
        CHANGED_IN_RELEASE2)


def dump_line(ex):
    return json.dumps(ex, ensure_ascii=True, separators=(",", ":")) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="data/support", help="output directory")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--system-rate", type=float, default=0.25,
                    help="fraction of examples with the system prompt (default 0.25)")
    args = ap.parse_args(argv)

    r1_facts, r2_facts = build_facts(args.seed)
    mk = lambda rel, split, facts, n: make_examples(
        args.seed, rel, split, facts, n, args.system_rate)

    files = OrderedDict()
    files["release1-train"] = mk(1, "train", r1_facts, R1_TRAIN_PER_FACT)
    files["release1-test"] = mk(1, "test", r1_facts, R1_TEST_PER_FACT)
    files["release2-train"] = mk(2, "train", r2_facts, R2_TRAIN_PER_FACT)
    files["release2-test"] = mk(2, "test", r2_facts, R2_TEST_PER_FACT)
    files["release2-changed-test"] = [
        e for e in files["release2-test"] if e[0] in CHANGED_IN_RELEASE2]
    files["release1-unchanged-test"] = [
        e for e in files["release1-test"] if e[0] not in CHANGED_IN_RELEASE2]

    check(files, r1_facts, r2_facts)

    os.makedirs(args.out, exist_ok=True)
    total_bytes = 0
    for name, exs in files.items():
        data = "".join(dump_line(ex) for _, ex in exs).encode("ascii")
        path = os.path.join(args.out, name + ".jsonl")
        with open(path, "wb") as fh:
            fh.write(data)
        total_bytes += len(data)
        topics = Counter(ex["topic"] for _, ex in exs)
        longest = max(sum(len(m["content"]) for m in ex["messages"]) for _, ex in exs)
        print("%-30s %5d examples  %7d bytes  sha256 %s  longest conversation %d bytes" % (
            name + ".jsonl", len(exs), len(data), hashlib.sha256(data).hexdigest()[:16],
            longest))
        print("    " + "  ".join("%s=%d" % (t, c) for t, c in sorted(topics.items())))
    print("total %d bytes in %s" % (total_bytes, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
