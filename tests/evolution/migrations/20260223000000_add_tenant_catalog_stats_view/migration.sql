-- Hand-written view for the admin dashboard. Prisma's `views` preview feature is not used, so
-- schema.prisma is unchanged and Prisma Migrate neither creates nor drops it.

-- CreateView
CREATE VIEW "TenantCatalogStats" AS
SELECT t."id" AS "tenantId",
       t."shop",
       t."wishlistCount",
       count(p."id") AS "productCount"
  FROM "Tenant" t
  LEFT JOIN "ProductProfile" p ON p."tenantId" = t."id"
 GROUP BY t."id";
