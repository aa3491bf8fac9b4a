import pytest

from tollway.call import Usage
from tollway.config import PriceConfig
from tollway.pricing import Pricer


def test_library_price_matches_published_rates() -> None:
    # gpt-4o-mini: $0.15/M input, $0.075/M cached input, $0.60/M output
    p = Pricer({})
    usage = Usage(input_tokens=1000, cached_tokens=200, output_tokens=100)
    cost = p.cost("openai", "openai", "gpt-4o-mini", "gpt-4o-mini", usage)
    assert cost == pytest.approx(800 * 0.15e-6 + 200 * 0.075e-6 + 100 * 0.6e-6)


def test_cached_tokens_are_cheaper_not_dropped() -> None:
    p = Pricer({})
    full = p.cost("openai", "openai", "gpt-4o-mini", "m", Usage(input_tokens=1000, output_tokens=0))
    cached = p.cost("openai", "openai", "gpt-4o-mini", "m", Usage(input_tokens=1000, cached_tokens=1000))
    assert full is not None and cached is not None and 0 < cached < full


def test_override_prices_reasoning_separately() -> None:
    p = Pricer({"my-model": PriceConfig(input=1.0, output=2.0, cached_input=0.5, reasoning=8.0)})
    usage = Usage(input_tokens=100, cached_tokens=40, output_tokens=50, reasoning_tokens=30)
    cost = p.cost("vllm", "local", "my-model", "my-model", usage)
    assert cost == pytest.approx((60 * 1.0 + 40 * 0.5 + 20 * 2.0 + 30 * 8.0) / 1e6)


def test_unknown_model_has_no_cost_and_self_hosted_is_unpriced() -> None:
    p = Pricer({})
    assert p.cost("mock", "m", "no-such-model-xyz", "x", Usage(input_tokens=5)) is None
    assert p.cost("ollama", "ollama", "llama3", "llama3", Usage(input_tokens=5)) is None


def test_mock_provider_priced_as_the_model_it_imitates() -> None:
    p = Pricer({})
    assert p.cost("mock", "mock-a", "gpt-4o-mini", "gpt-4o-mini", Usage(input_tokens=10**6)) == pytest.approx(
        0.15
    )


def test_two_aliases_of_one_upstream_model_keep_their_own_prices() -> None:
    """Overrides may be keyed by the public name; the first alias resolved used to price the other."""
    pricer = Pricer(
        {"fast": PriceConfig(input=1.0, output=1.0), "cheap": PriceConfig(input=100.0, output=100.0)}
    )
    million_in = Usage(input_tokens=1_000_000, output_tokens=0)
    assert pricer.cost("openai", "p", "gpt-4o-mini", "fast", million_in) == pytest.approx(1.0)
    assert pricer.cost("openai", "p", "gpt-4o-mini", "cheap", million_in) == pytest.approx(100.0)
    assert pricer.cost("openai", "p", "gpt-4o-mini", "fast", million_in) == pytest.approx(1.0)
    # no override for this public name: the library's price of the upstream model
    listed = pricer.cost("openai", "p", "gpt-4o-mini", "gpt-4o-mini", million_in)
    assert listed is not None and listed == pytest.approx(0.15)
