import uuid

from hypothesis import given
from hypothesis import strategies as st

from services.detector.domain.outcomes import NAMESPACE, batch_id, interruption_id

names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)


@given(names, names)
def test_an_interruption_id_is_the_uuid5_of_the_deal_and_the_episode(deal_key: str, identity: str):
    assert interruption_id(deal_key, identity) == str(uuid.uuid5(NAMESPACE, f"{deal_key}|{identity}"))


@given(names, names, st.floats(min_value=0, max_value=4e9))
def test_a_batch_id_is_the_uuid5_of_the_owners_and_the_hour(frm: str, to: str, at: float):
    assert batch_id(frm, to, at) == str(uuid.uuid5(NAMESPACE, f"bulk|{frm}|{to}|{int(at // 3600)}"))
