use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkeys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    /// The WebAuthn user handle given to the authenticator (a random UUID,
    /// never the user id or e-mail address).
    pub user_handle: String,
    /// base64url of the credential id, unique across all users.
    pub credential_id: String,
    pub name: String,
    /// The verified credential (public key, algorithm, flags) as JSON. It
    /// holds no secret.
    #[sea_orm(column_type = "Text")]
    pub credential: String,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub counter: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
