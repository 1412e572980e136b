//! A large interface, for the cost of the handshake: a shop's back office with 50 methods over
//! 30 user types (newtypes, structs of several fields, enums with payloads, nesting, options,
//! sequences, maps, and three recursive types: `Category`, `AttributeValue` and `Filter`).
//!
//! The bodies are trivial (defaults and echoes): only the description crosses at connect,
//! and only `add` is called.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ProductId(pub u64);

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct CustomerId(pub u64);

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct OrderId(pub u64);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub enum Currency {
    #[default]
    Eur,
    Usd,
    Gbp,
    /// An ISO 4217 code.
    Other(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Money {
    pub cents: i64,
    pub currency: Currency,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: u32,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Dimensions {
    pub width_mm: u32,
    pub height_mm: u32,
    pub depth_mm: u32,
    pub weight_g: u32,
}

/// A category within its parents (recursive through an `Option`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Category {
    pub name: String,
    pub parent: Option<Box<Category>>,
}

/// A product attribute (recursive through a `Vec`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub enum AttributeValue {
    #[default]
    Null,
    Text(String),
    Number(f64),
    Flag(bool),
    List(Vec<AttributeValue>),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Product {
    pub id: ProductId,
    pub name: String,
    pub description: Option<String>,
    pub price: Money,
    pub dimensions: Dimensions,
    pub tags: Vec<String>,
    pub category: Category,
    pub attributes: BTreeMap<String, AttributeValue>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Address {
    pub street: String,
    pub city: String,
    pub postcode: String,
    pub country: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub enum Tier {
    #[default]
    Basic,
    Silver,
    Gold {
        since: Timestamp,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Customer {
    pub id: CustomerId,
    pub name: String,
    pub email: String,
    pub addresses: Vec<Address>,
    pub tier: Tier,
    pub created: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Discount {
    Percent(u8),
    Amount(Money),
    BuyGetFree { buy: u32, free: u32 },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OrderLine {
    pub product: ProductId,
    pub quantity: u32,
    pub unit_price: Money,
    pub discount: Option<Discount>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Payment {
    Card { last4: u16, network: String },
    Transfer { iban: String },
    Voucher(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub enum EventKind {
    #[default]
    PickedUp,
    InTransit,
    OutForDelivery,
    Delivered,
    Failed(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrackingEvent {
    pub at: Timestamp,
    pub location: Option<String>,
    pub kind: EventKind,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tracking {
    pub carrier: String,
    pub code: String,
    pub events: Vec<TrackingEvent>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub enum OrderStatus {
    #[default]
    Pending,
    Paid {
        at: Timestamp,
        payment: Payment,
    },
    Shipped(Tracking),
    Delivered {
        at: Timestamp,
    },
    Cancelled {
        reason: String,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub enum ShippingMethod {
    #[default]
    Standard,
    Express,
    Pickup {
        store: u32,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Shipping {
    pub address: Address,
    pub method: ShippingMethod,
    pub cost: Money,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub customer: CustomerId,
    pub lines: Vec<OrderLine>,
    pub status: OrderStatus,
    pub shipping: Shipping,
    pub notes: Vec<(Timestamp, String)>,
    pub placed: Timestamp,
}

/// A condition on products (recursive through a `Vec` and a `Box`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub enum Filter {
    #[default]
    All,
    Attribute {
        key: String,
        value: AttributeValue,
    },
    InCategory(String),
    PriceBelow(Money),
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub enum SortOrder {
    #[default]
    Relevance,
    PriceAscending,
    PriceDescending,
    Newest,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Search {
    pub text: Option<String>,
    pub filter: Filter,
    pub sort: SortOrder,
    pub offset: u32,
    pub limit: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Hit {
    pub product: ProductId,
    pub score: f32,
    /// Byte ranges of the matched text in the product's name.
    pub highlights: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchResult {
    pub hits: Vec<Hit>,
    pub total: u64,
    pub facets: HashMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StockLevel {
    pub product: ProductId,
    /// Units on hand by warehouse number.
    pub warehouses: BTreeMap<u32, u32>,
    pub reserved: u32,
    pub next_delivery: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ShopError {
    NotFound(String),
    Invalid { field: String, reason: String },
    Conflict(OrderId),
    OutOfStock(Vec<ProductId>),
    Unavailable,
}

/// A shop's back office: 50 methods over the 30 types above.
#[lpc::service]
pub trait Large {
    /// The small call, as in `Bench`: what the connect measurement calls first.
    fn add(&self, a: i32, b: i32) -> i32;
    fn product(&self, id: ProductId) -> Result<Product, ShopError>;
    fn products(&self, ids: Vec<ProductId>) -> Vec<Option<Product>>;
    fn create_product(&self, product: Product) -> Result<ProductId, ShopError>;
    fn update_product(&self, product: &mut Product) -> Result<(), ShopError>;
    fn delete_product(&self, id: ProductId) -> Result<(), ShopError>;
    fn set_price(&self, id: ProductId, price: Money) -> Result<Money, ShopError>;
    fn set_attribute(
        &self,
        id: ProductId,
        key: String,
        value: AttributeValue,
    ) -> Result<Option<AttributeValue>, ShopError>;
    fn attributes(&self, id: ProductId) -> BTreeMap<String, AttributeValue>;
    fn categories(&self) -> Vec<Category>;
    fn move_to_category(&self, id: ProductId, category: Category) -> Result<(), ShopError>;
    fn dimensions(&self, id: ProductId) -> Option<Dimensions>;
    fn search(&self, query: Search) -> SearchResult;
    fn count(&self, filter: Filter) -> u64;
    fn suggest(&self, prefix: &str, limit: u32) -> Vec<String>;
    fn customer(&self, id: CustomerId) -> Result<Customer, ShopError>;
    fn find_customer(&self, email: &str) -> Option<CustomerId>;
    fn register(
        &self,
        name: String,
        email: String,
        address: Address,
    ) -> Result<CustomerId, ShopError>;
    fn add_address(&self, id: CustomerId, address: Address) -> Result<u32, ShopError>;
    fn addresses(&self, id: CustomerId) -> Vec<Address>;
    fn set_tier(&self, id: CustomerId, tier: Tier) -> Result<Tier, ShopError>;
    fn customers_by_tier(&self) -> HashMap<String, Vec<CustomerId>>;
    fn order(&self, id: OrderId) -> Result<Order, ShopError>;
    fn orders_of(&self, customer: CustomerId, since: Option<Timestamp>) -> Vec<OrderId>;
    fn place_order(
        &self,
        customer: CustomerId,
        lines: Vec<OrderLine>,
        shipping: Shipping,
    ) -> Result<OrderId, ShopError>;
    fn add_line(&self, order: OrderId, line: OrderLine) -> Result<u32, ShopError>;
    fn remove_line(&self, order: OrderId, index: u32) -> Result<OrderLine, ShopError>;
    fn apply_discount(&self, order: OrderId, discount: Discount) -> Result<Money, ShopError>;
    fn total(&self, order: OrderId) -> Result<Money, ShopError>;
    fn status(&self, order: OrderId) -> Result<OrderStatus, ShopError>;
    fn pay(&self, order: OrderId, payment: Payment) -> Result<Timestamp, ShopError>;
    fn refund(&self, order: OrderId, amount: Money, reason: String) -> Result<Money, ShopError>;
    fn cancel(&self, order: OrderId, reason: &str) -> Result<(), ShopError>;
    fn ship(&self, order: OrderId, tracking: Tracking) -> Result<(), ShopError>;
    fn tracking(&self, order: OrderId) -> Option<Tracking>;
    fn add_tracking_event(&self, order: OrderId, event: TrackingEvent) -> Result<usize, ShopError>;
    fn deliver(&self, order: OrderId, at: Timestamp) -> Result<(), ShopError>;
    fn shipping_options(&self, to: &Address, size: Dimensions) -> Vec<(ShippingMethod, Money)>;
    fn set_shipping(&self, order: OrderId, shipping: Shipping) -> Result<(), ShopError>;
    fn stock(&self, id: ProductId) -> StockLevel;
    fn restock(
        &self,
        id: ProductId,
        warehouse: u32,
        quantity: u32,
    ) -> Result<StockLevel, ShopError>;
    fn reserve(&self, lines: &[OrderLine]) -> Result<Vec<StockLevel>, ShopError>;
    fn low_stock(&self, threshold: u32) -> Vec<(ProductId, u32)>;
    fn convert(&self, amount: Money, to: Currency) -> Result<Money, ShopError>;
    fn rates(&self, base: Currency) -> BTreeMap<String, f64>;
    fn events_between(&self, from: Timestamp, to: Timestamp) -> Vec<TrackingEvent>;
    fn revenue(&self, from: Timestamp, to: Timestamp, currency: Currency) -> Money;
    fn best_sellers(&self, category: Option<Category>, limit: u32) -> Vec<(Product, u64)>;
    fn ping(&self);
    fn version(&self) -> String;
}

/// The large interface's implementation: trivial bodies.
pub struct Shop;

impl Large for Shop {
    fn add(&self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
    fn product(&self, id: ProductId) -> Result<Product, ShopError> {
        Ok(Product {
            id,
            ..Product::default()
        })
    }
    fn products(&self, ids: Vec<ProductId>) -> Vec<Option<Product>> {
        ids.into_iter().map(|id| self.product(id).ok()).collect()
    }
    fn create_product(&self, product: Product) -> Result<ProductId, ShopError> {
        Ok(product.id)
    }
    fn update_product(&self, product: &mut Product) -> Result<(), ShopError> {
        product.tags.push("updated".into());
        Ok(())
    }
    fn delete_product(&self, _id: ProductId) -> Result<(), ShopError> {
        Err(ShopError::Unavailable)
    }
    fn set_price(&self, _id: ProductId, price: Money) -> Result<Money, ShopError> {
        Ok(price)
    }
    fn set_attribute(
        &self,
        _id: ProductId,
        _key: String,
        value: AttributeValue,
    ) -> Result<Option<AttributeValue>, ShopError> {
        Ok(Some(value))
    }
    fn attributes(&self, _id: ProductId) -> BTreeMap<String, AttributeValue> {
        BTreeMap::new()
    }
    fn categories(&self) -> Vec<Category> {
        Vec::new()
    }
    fn move_to_category(&self, _id: ProductId, _category: Category) -> Result<(), ShopError> {
        Ok(())
    }
    fn dimensions(&self, _id: ProductId) -> Option<Dimensions> {
        None
    }
    fn search(&self, query: Search) -> SearchResult {
        SearchResult {
            total: u64::from(query.limit),
            ..SearchResult::default()
        }
    }
    fn count(&self, _filter: Filter) -> u64 {
        0
    }
    fn suggest(&self, prefix: &str, limit: u32) -> Vec<String> {
        vec![prefix.to_owned(); limit.min(1) as usize]
    }
    fn customer(&self, id: CustomerId) -> Result<Customer, ShopError> {
        Ok(Customer {
            id,
            ..Customer::default()
        })
    }
    fn find_customer(&self, _email: &str) -> Option<CustomerId> {
        None
    }
    fn register(
        &self,
        _name: String,
        _email: String,
        _address: Address,
    ) -> Result<CustomerId, ShopError> {
        Ok(CustomerId(1))
    }
    fn add_address(&self, _id: CustomerId, _address: Address) -> Result<u32, ShopError> {
        Ok(0)
    }
    fn addresses(&self, _id: CustomerId) -> Vec<Address> {
        Vec::new()
    }
    fn set_tier(&self, _id: CustomerId, tier: Tier) -> Result<Tier, ShopError> {
        Ok(tier)
    }
    fn customers_by_tier(&self) -> HashMap<String, Vec<CustomerId>> {
        HashMap::new()
    }
    fn order(&self, id: OrderId) -> Result<Order, ShopError> {
        Ok(Order {
            id,
            ..Order::default()
        })
    }
    fn orders_of(&self, _customer: CustomerId, _since: Option<Timestamp>) -> Vec<OrderId> {
        Vec::new()
    }
    fn place_order(
        &self,
        _customer: CustomerId,
        _lines: Vec<OrderLine>,
        _shipping: Shipping,
    ) -> Result<OrderId, ShopError> {
        Ok(OrderId(1))
    }
    fn add_line(&self, _order: OrderId, _line: OrderLine) -> Result<u32, ShopError> {
        Ok(0)
    }
    fn remove_line(&self, order: OrderId, _index: u32) -> Result<OrderLine, ShopError> {
        Err(ShopError::Conflict(order))
    }
    fn apply_discount(&self, _order: OrderId, _discount: Discount) -> Result<Money, ShopError> {
        Ok(Money::default())
    }
    fn total(&self, _order: OrderId) -> Result<Money, ShopError> {
        Ok(Money::default())
    }
    fn status(&self, _order: OrderId) -> Result<OrderStatus, ShopError> {
        Ok(OrderStatus::Pending)
    }
    fn pay(&self, _order: OrderId, _payment: Payment) -> Result<Timestamp, ShopError> {
        Ok(Timestamp::default())
    }
    fn refund(&self, _order: OrderId, amount: Money, _reason: String) -> Result<Money, ShopError> {
        Ok(amount)
    }
    fn cancel(&self, _order: OrderId, reason: &str) -> Result<(), ShopError> {
        Err(ShopError::Invalid {
            field: "reason".into(),
            reason: reason.to_owned(),
        })
    }
    fn ship(&self, _order: OrderId, _tracking: Tracking) -> Result<(), ShopError> {
        Ok(())
    }
    fn tracking(&self, _order: OrderId) -> Option<Tracking> {
        None
    }
    fn add_tracking_event(
        &self,
        _order: OrderId,
        _event: TrackingEvent,
    ) -> Result<usize, ShopError> {
        Ok(1)
    }
    fn deliver(&self, _order: OrderId, _at: Timestamp) -> Result<(), ShopError> {
        Ok(())
    }
    fn shipping_options(&self, _to: &Address, _size: Dimensions) -> Vec<(ShippingMethod, Money)> {
        vec![(ShippingMethod::Standard, Money::default())]
    }
    fn set_shipping(&self, _order: OrderId, _shipping: Shipping) -> Result<(), ShopError> {
        Ok(())
    }
    fn stock(&self, id: ProductId) -> StockLevel {
        StockLevel {
            product: id,
            ..StockLevel::default()
        }
    }
    fn restock(
        &self,
        id: ProductId,
        warehouse: u32,
        quantity: u32,
    ) -> Result<StockLevel, ShopError> {
        let mut level = self.stock(id);
        level.warehouses.insert(warehouse, quantity);
        Ok(level)
    }
    fn reserve(&self, lines: &[OrderLine]) -> Result<Vec<StockLevel>, ShopError> {
        Err(ShopError::OutOfStock(
            lines.iter().map(|l| l.product).collect(),
        ))
    }
    fn low_stock(&self, _threshold: u32) -> Vec<(ProductId, u32)> {
        Vec::new()
    }
    fn convert(&self, amount: Money, to: Currency) -> Result<Money, ShopError> {
        Ok(Money {
            cents: amount.cents,
            currency: to,
        })
    }
    fn rates(&self, _base: Currency) -> BTreeMap<String, f64> {
        BTreeMap::new()
    }
    fn events_between(&self, _from: Timestamp, _to: Timestamp) -> Vec<TrackingEvent> {
        Vec::new()
    }
    fn revenue(&self, _from: Timestamp, _to: Timestamp, currency: Currency) -> Money {
        Money { cents: 0, currency }
    }
    fn best_sellers(&self, _category: Option<Category>, _limit: u32) -> Vec<(Product, u64)> {
        Vec::new()
    }
    fn ping(&self) {}
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_methods_over_thirty_types() {
        let info = LARGE_INTERFACE.info().expect("the large interface traces");
        assert_eq!(info.methods.len(), 50);
        assert_eq!(info.types.len(), 30, "{:?}", info.types.keys());
    }
}
