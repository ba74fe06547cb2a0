//! Token prices as money rules: what a number of tokens costs at the device's price list, how many an amount buys, and whether an agent's top-up asks the listed price.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::money::Money;

/// Provider -> the price of a million tokens; names compare without case.
pub type TokenPrices = BTreeMap<String, Money>;

/// The price of a million of `provider`'s tokens, if the list has one.
pub fn per_million(prices: &TokenPrices, provider: &str) -> Option<Money> {
    prices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(provider))
        .map(|(_, price)| *price)
}

/// What `tokens` of `provider` cost, rounded up to the minor unit (a
/// provider does not sell a fraction of a cent); none without a price or
/// when it overflows.
pub fn token_price(prices: &TokenPrices, provider: &str, tokens: u64) -> Option<Money> {
    let per_million = per_million(prices, provider)?;
    let minor = i128::from(per_million.minor)
        .checked_mul(i128::from(tokens))?
        .checked_add(999_999)?
        / 1_000_000;
    Some(Money::new(i64::try_from(minor).ok()?, per_million.currency))
}

/// How many of `provider`'s tokens `amount` buys, rounded down: priced
/// again with [`token_price`], rounding up, they never cost more than was
/// said. No price, or a price in another currency, buys none: no rate is
/// guessed.
pub fn tokens_for(prices: &TokenPrices, provider: &str, amount: Money) -> Option<u64> {
    let per_million = per_million(prices, provider)?;
    if !amount.is_positive()
        || !per_million.is_positive()
        || per_million.currency != amount.currency
    {
        return None;
    }
    let count = i128::from(amount.minor).checked_mul(1_000_000)? / i128::from(per_million.minor);
    u64::try_from(count).ok()
}

/// Why an agent's token top-up is refused before the user hears of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum TopUpRefusal {
    /// Tokens come only from a provider the device knows, spelled as the
    /// agent typed it: nothing is guessed.
    #[error("{provider} is not a token provider this device knows")]
    UnknownProvider { provider: String },
    /// The amount is not what the device's price list says the tokens cost.
    #[error("{tokens} {provider} tokens cost {price} at this device's prices, not {asked}")]
    NotTheListedPrice {
        tokens: u64,
        provider: String,
        price: Money,
        asked: Money,
    },
}

/// Whether an agent's top-up of `tokens` from `provider` for `asked` may be
/// put to the user: from a known provider and, when the list prices it, at
/// that price (so what the user hears, "1000000 Claude tokens for 90 yuan",
/// is what the provider sells for the money).
pub fn check_top_up(
    known_providers: &[String],
    prices: &TokenPrices,
    provider: &str,
    tokens: Option<u64>,
    asked: Money,
) -> Result<(), TopUpRefusal> {
    if !known_providers
        .iter()
        .any(|known| known.eq_ignore_ascii_case(provider))
    {
        return Err(TopUpRefusal::UnknownProvider {
            provider: provider.to_owned(),
        });
    }
    if let Some(tokens) = tokens
        && let Some(price) = token_price(prices, provider, tokens)
        && price != asked
    {
        return Err(TopUpRefusal::NotTheListedPrice {
            tokens,
            provider: provider.to_owned(),
            price,
            asked,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn cny(minor: i64) -> Money {
        Money::new(minor, Currency::CNY)
    }

    fn prices() -> TokenPrices {
        [
            ("Kimi".to_owned(), cny(1_200)),
            ("Claude".to_owned(), cny(9_000)),
        ]
        .into()
    }

    #[test]
    fn a_token_price_rounds_up_to_the_minor_unit_and_names_compare_without_case() {
        assert_eq!(token_price(&prices(), "kimi", 200_000), Some(cny(240)));
        assert_eq!(token_price(&prices(), "KIMI", 1), Some(cny(1)));
        assert_eq!(token_price(&prices(), "Nobody", 1), None);
        let dear: TokenPrices = [("Dear".to_owned(), cny(i64::MAX))].into();
        assert_eq!(
            token_price(&dear, "Dear", 2_000_000),
            None,
            "more than money holds"
        );
    }

    #[test]
    fn an_amount_buys_the_tokens_whose_price_is_never_more_than_it() {
        let tokens = tokens_for(&prices(), "Kimi", cny(5_000)).unwrap();
        assert_eq!(tokens, 4_166_666);
        assert!(token_price(&prices(), "Kimi", tokens).unwrap().minor <= 5_000);
        assert_eq!(
            tokens_for(&prices(), "Kimi", Money::new(5_000, Currency::USD)),
            None
        );
        assert_eq!(tokens_for(&prices(), "Kimi", cny(0)), None);
        assert_eq!(tokens_for(&prices(), "Nobody", cny(5_000)), None);
    }

    #[test]
    fn an_agents_top_up_is_refused_from_an_unknown_provider_or_off_the_listed_price() {
        let known = vec!["Claude".to_owned(), "Kimi".to_owned()];
        let check = |provider: &str, tokens, asked| {
            check_top_up(&known, &prices(), provider, tokens, asked)
        };
        assert_eq!(check("claude", Some(1_000_000), cny(9_000)), Ok(()));
        assert_eq!(
            check("Claude", None, cny(1)),
            Ok(()),
            "no count, no price to hold it to"
        );
        let refused = check("Claude", Some(1_000_000), cny(100)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "1000000 Claude tokens cost 90.00 CNY at this device's prices, not 1.00 CNY"
        );
        assert_eq!(
            check("Anthropic", Some(1), cny(1)).unwrap_err().to_string(),
            "Anthropic is not a token provider this device knows"
        );
    }
}
