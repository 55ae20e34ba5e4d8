"""Protocol files cite their sources as published, and say when they are adaptations."""

from __future__ import annotations

import pytest

from labkit.protocols import load_protocol

PAIN_PROTOCOLS = ("m1_10hz_pain_1000", "m1_10hz_pain_2000", "m1_10hz_pain_3000",
                  "sham_m1_10hz_pain")


@pytest.mark.parametrize("name", PAIN_PROTOCOLS)
def test_pain_reviews_are_cited_with_their_published_titles_and_pages(name):
    refs = " ".join(load_protocol(name).references)
    # Tsai 2023 (Life 13:258, doi 10.3390/life13020258) is a narrative review
    assert "narrative review. Life (Basel) 2023;13:258" in refs
    assert "meta-analysis. Life" not in refs
    # Aamir 2020 (Adv Ther 37:998-1012, doi 10.1007/s12325-020-01231-2)
    assert ("Repetitive magnetic stimulation for the management of peripheral neuropathic "
            "pain: a systematic review. Adv Ther 2020;37:998-1012") in refs


@pytest.mark.parametrize("name", ["m1_10hz_pain_2000", "m1_10hz_pain_3000"])
def test_extended_10hz_schedules_are_labelled_adaptations(name):
    assert load_protocol(name).description.startswith("ADAPTATION, not a published regimen")


def test_1hz_file_states_what_chen_1997_actually_used():
    description = load_protocol("m1_1hz_inhibitory").description
    assert description.startswith("ADAPTATION of Chen et al. 1997")
    # Chen et al. 1997, Neurology 48:1398: 0.9 Hz for 15 min = 810 pulses at 115 % MT
    for fact in ("0.9 Hz", "810 pulses", "115 % of the motor threshold"):
        assert fact in description
